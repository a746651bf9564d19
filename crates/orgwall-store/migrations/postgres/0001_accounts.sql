-- orgwall's accounts (PostgreSQL): email verification tokens, a global table beside the
-- kernel's users and sessions (module `tenancy`).

CREATE TABLE email_verifications (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL CONSTRAINT email_verifications_token_hash_key UNIQUE,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);
