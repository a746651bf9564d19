-- The kernel's tables (module `tenancy`), SQLite: identity and access, the control plane
-- every service shares. Global tables first (the allowlist), then tenant tables.
-- Every tenant table: org_id NOT NULL -> orgs ON DELETE CASCADE, key (org_id, id),
-- composite foreign keys to other tenant tables, indexes leading with org_id.
-- SQLite stores tenant rows in <table>_rows; the migration runner generates the scoped
-- view <table> (org_id = app_org()), its INSTEAD OF triggers and the guard triggers on
-- the base table. The views written out below add the documented cross-org reads.
-- UUIDs are TEXT, timestamps INTEGER microseconds since the epoch, booleans INTEGER 0/1.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL CONSTRAINT users_email_key UNIQUE CHECK (email = lower(email)),
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    email_verified_at INTEGER,
    password_changed_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Plans (global, configurable by editing rows).
CREATE TABLE plans (
    name TEXT PRIMARY KEY,
    max_members INTEGER NOT NULL CHECK (max_members >= 0),
    max_projects INTEGER NOT NULL CHECK (max_projects >= 0),
    max_tickets INTEGER NOT NULL CHECK (max_tickets >= 0),
    max_storage_bytes INTEGER NOT NULL CHECK (max_storage_bytes >= 0),
    rate_limit_per_minute INTEGER NOT NULL CHECK (rate_limit_per_minute > 0)
);
INSERT INTO plans VALUES
    ('free', 50, 20, 5000, 104857600, 1200),
    ('pro', 500, 200, 100000, 10737418240, 6000),
    ('enterprise', 100000, 100000, 100000000, 1099511627776, 60000);

-- rate_limit_per_minute: the org's override of its plan's rate limit. The plan name is
-- checked in code (no foreign key to plans, as on the databases migrated so far).
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL CONSTRAINT orgs_slug_key UNIQUE,
    name TEXT NOT NULL,
    plan TEXT NOT NULL DEFAULT 'free',
    deleting_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute > 0)
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE,
    active_org_id TEXT REFERENCES orgs (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Tenant tables.

CREATE TABLE roles_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    is_system INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT roles_key_key UNIQUE (org_id, key)
);

CREATE TABLE memberships_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id),
    CONSTRAINT memberships_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES roles_rows (org_id, id)
);
CREATE INDEX memberships_role_idx ON memberships_rows (org_id, role_id);
-- Cross-org read by design: a user's own memberships (list my organizations).
CREATE INDEX memberships_user_xorg_idx ON memberships_rows (user_id);

CREATE TABLE invitations_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    email TEXT NOT NULL CHECK (email = lower(email)),
    role_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    invited_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    expires_at INTEGER NOT NULL,
    accepted_at INTEGER,
    accepted_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    revoked_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT invitations_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES roles_rows (org_id, id)
);
CREATE INDEX invitations_email_idx ON invitations_rows (org_id, email);
CREATE INDEX invitations_role_idx ON invitations_rows (org_id, role_id);
-- Cross-org read by design: the hash of a token names exactly one invitation.
CREATE UNIQUE INDEX invitations_token_xorg_idx ON invitations_rows (token_hash);

CREATE TABLE api_keys_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    role_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT api_keys_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES roles_rows (org_id, id)
);
CREATE INDEX api_keys_role_idx ON api_keys_rows (org_id, role_id);
-- Cross-org read by design: the hash of a key names exactly one key.
CREATE UNIQUE INDEX api_keys_key_xorg_idx ON api_keys_rows (key_hash);

CREATE TABLE audit_events_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    actor_kind TEXT NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'system')),
    actor_id TEXT,
    actor_name TEXT,
    action TEXT NOT NULL,
    target_kind TEXT,
    target_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    request_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_events_action_idx ON audit_events_rows (org_id, action, id);
CREATE INDEX audit_events_actor_idx ON audit_events_rows (org_id, actor_id, id);

-- Documented cross-org reads (reads only: writes still pass the guard triggers).
CREATE VIEW memberships AS SELECT * FROM memberships_rows
    WHERE org_id = app_org() OR user_id = app_user();
CREATE VIEW roles AS SELECT * FROM roles_rows
    WHERE org_id = app_org() OR EXISTS (
        SELECT 1 FROM memberships_rows m
        WHERE m.org_id = roles_rows.org_id AND m.role_id = roles_rows.id AND m.user_id = app_user());
CREATE VIEW invitations AS SELECT * FROM invitations_rows
    WHERE org_id = app_org() OR token_hash = app_lookup();
CREATE VIEW api_keys AS SELECT * FROM api_keys_rows
    WHERE org_id = app_org() OR key_hash = app_lookup();
