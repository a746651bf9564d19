-- orgwall schema, SQLite. Global tables first (the allowlist), then tenant tables.
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

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL CONSTRAINT orgs_slug_key UNIQUE,
    name TEXT NOT NULL,
    plan TEXT NOT NULL DEFAULT 'free',
    deleting_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
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

CREATE TABLE email_verifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL CONSTRAINT email_verifications_token_hash_key UNIQUE,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);

-- The job queue is a system table: the scheduler must see every org's queue to be fair.
-- A tenant job names its org in org_id; the worker enters that org's scope to run it.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 5,
    run_at INTEGER NOT NULL,
    locked_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_ready_idx ON jobs (status, run_at);
CREATE INDEX jobs_org_ready_idx ON jobs (org_id, status, run_at);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX outbox_pending_idx ON outbox (status, created_at);

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

CREATE TABLE projects_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT projects_key_key UNIQUE (org_id, key)
);

CREATE TABLE tickets_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    assignee_id TEXT,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT tickets_project_fkey FOREIGN KEY (org_id, project_id)
        REFERENCES projects_rows (org_id, id),
    CONSTRAINT tickets_assignee_fkey FOREIGN KEY (org_id, assignee_id)
        REFERENCES memberships_rows (org_id, user_id)
);
CREATE INDEX tickets_project_idx ON tickets_rows (org_id, project_id, id);
CREATE INDEX tickets_status_idx ON tickets_rows (org_id, status, id);
CREATE INDEX tickets_assignee_idx ON tickets_rows (org_id, assignee_id, id);

CREATE TABLE ticket_events_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    actor_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    field TEXT NOT NULL,
    from_value TEXT,
    to_value TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT ticket_events_ticket_fkey FOREIGN KEY (org_id, ticket_id)
        REFERENCES tickets_rows (org_id, id)
);
CREATE INDEX ticket_events_ticket_idx ON ticket_events_rows (org_id, ticket_id, id);

CREATE TABLE ticket_comments_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    author_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT ticket_comments_ticket_fkey FOREIGN KEY (org_id, ticket_id)
        REFERENCES tickets_rows (org_id, id)
);
CREATE INDEX ticket_comments_ticket_idx ON ticket_comments_rows (org_id, ticket_id, id);

CREATE TABLE notes_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE files_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    storage_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
);

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

CREATE TABLE exports_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress INTEGER NOT NULL DEFAULT 0,
    storage_key TEXT,
    size_bytes INTEGER,
    error TEXT,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (org_id, id)
);

-- Cascades between tenant tables (projects -> tickets, tickets -> comments and events)
-- are declared by the module; the runner generates their named triggers.

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
