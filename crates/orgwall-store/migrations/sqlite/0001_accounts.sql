-- orgwall's accounts (SQLite): email verification tokens, a global table beside the
-- kernel's users and sessions (module `tenancy`).
-- UUIDs are TEXT, timestamps INTEGER microseconds since the epoch, booleans INTEGER 0/1.

CREATE TABLE email_verifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL CONSTRAINT email_verifications_token_hash_key UNIQUE,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);
