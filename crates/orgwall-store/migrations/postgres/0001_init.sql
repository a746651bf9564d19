-- orgwall schema, PostgreSQL. Global tables first (the allowlist), then tenant tables.
-- Every tenant table: org_id NOT NULL -> orgs ON DELETE CASCADE, key (org_id, id),
-- composite foreign keys to other tenant tables, indexes leading with org_id.
-- Row-level security (ENABLE + FORCE + the org_isolation policy) and grants to the
-- server role are applied by the migration runner to every tenant table, including
-- tables added by later migrations; the extra read policies below are the documented
-- cross-org reads.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL CONSTRAINT users_email_key UNIQUE CHECK (email = lower(email)),
    name text NOT NULL,
    password_hash text NOT NULL,
    email_verified_at timestamptz,
    password_changed_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE orgs (
    id uuid PRIMARY KEY,
    slug text NOT NULL CONSTRAINT orgs_slug_key UNIQUE,
    name text NOT NULL,
    plan text NOT NULL DEFAULT 'free',
    deleting_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE,
    active_org_id uuid REFERENCES orgs (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    idle_expires_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE email_verifications (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL CONSTRAINT email_verifications_token_hash_key UNIQUE,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);

-- The job queue is a system table: the scheduler must see every org's queue to be fair.
-- A tenant job names its org in org_id; the worker enters that org's scope to run it.
CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    org_id uuid REFERENCES orgs (id) ON DELETE CASCADE,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5,
    run_at timestamptz NOT NULL,
    locked_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX jobs_ready_idx ON jobs (status, run_at);
CREATE INDEX jobs_org_ready_idx ON jobs (org_id, status, run_at);

CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    org_id uuid REFERENCES orgs (id) ON DELETE CASCADE,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (status, created_at);

-- Tenant tables.

CREATE TABLE roles (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    key text NOT NULL,
    name text NOT NULL,
    permissions text NOT NULL,
    is_system boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT roles_key_key UNIQUE (org_id, key)
);

CREATE TABLE memberships (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id),
    CONSTRAINT memberships_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id)
);
CREATE INDEX memberships_role_idx ON memberships (org_id, role_id);
-- Cross-org read by design: a user's own memberships (list my organizations).
CREATE INDEX memberships_user_xorg_idx ON memberships (user_id);

CREATE TABLE invitations (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    email text NOT NULL CHECK (email = lower(email)),
    role_id uuid NOT NULL,
    token_hash text NOT NULL,
    invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT invitations_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id)
);
CREATE INDEX invitations_email_idx ON invitations (org_id, email);
CREATE INDEX invitations_role_idx ON invitations (org_id, role_id);
-- Cross-org read by design: the hash of a token names exactly one invitation.
CREATE UNIQUE INDEX invitations_token_xorg_idx ON invitations (token_hash);

CREATE TABLE api_keys (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    name text NOT NULL,
    role_id uuid NOT NULL,
    key_hash text NOT NULL,
    prefix text NOT NULL,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT api_keys_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id)
);
CREATE INDEX api_keys_role_idx ON api_keys (org_id, role_id);
-- Cross-org read by design: the hash of a key names exactly one key.
CREATE UNIQUE INDEX api_keys_key_xorg_idx ON api_keys (key_hash);

CREATE TABLE projects (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    key text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT projects_key_key UNIQUE (org_id, key)
);

CREATE TABLE tickets (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    title text NOT NULL,
    body text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    assignee_id uuid,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT tickets_project_fkey FOREIGN KEY (org_id, project_id)
        REFERENCES projects (org_id, id) ON DELETE CASCADE,
    CONSTRAINT tickets_assignee_fkey FOREIGN KEY (org_id, assignee_id)
        REFERENCES memberships (org_id, user_id)
);
CREATE INDEX tickets_project_idx ON tickets (org_id, project_id, id);
CREATE INDEX tickets_status_idx ON tickets (org_id, status, id);
CREATE INDEX tickets_assignee_idx ON tickets (org_id, assignee_id, id);

CREATE TABLE ticket_events (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    actor_id uuid REFERENCES users (id) ON DELETE SET NULL,
    field text NOT NULL,
    from_value text,
    to_value text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT ticket_events_ticket_fkey FOREIGN KEY (org_id, ticket_id)
        REFERENCES tickets (org_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_events_ticket_idx ON ticket_events (org_id, ticket_id, id);

CREATE TABLE ticket_comments (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    author_id uuid REFERENCES users (id) ON DELETE SET NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT ticket_comments_ticket_fkey FOREIGN KEY (org_id, ticket_id)
        REFERENCES tickets (org_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_comments_ticket_idx ON ticket_comments (org_id, ticket_id, id);

CREATE TABLE notes (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    title text NOT NULL,
    body text NOT NULL DEFAULT '',
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE files (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    name text NOT NULL,
    content_type text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    storage_key text NOT NULL,
    sha256 text NOT NULL,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE audit_events (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    actor_kind text NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'system')),
    actor_id uuid,
    actor_name text,
    action text NOT NULL,
    target_kind text,
    target_id uuid,
    detail jsonb NOT NULL DEFAULT '{}',
    request_id text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_events_action_idx ON audit_events (org_id, action, id);
CREATE INDEX audit_events_actor_idx ON audit_events (org_id, actor_id, id);

CREATE TABLE exports (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress integer NOT NULL DEFAULT 0,
    storage_key text,
    size_bytes bigint,
    error text,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (org_id, id)
);

-- Documented cross-org reads (SELECT only, never writes): they add to org_isolation.
CREATE POLICY member_self_read ON memberships FOR SELECT
    USING (user_id = (SELECT nullif(current_setting('app.user_id', true), '')::uuid));
CREATE POLICY role_self_read ON roles FOR SELECT
    USING (EXISTS (
        SELECT 1 FROM memberships m
        WHERE m.org_id = roles.org_id AND m.role_id = roles.id
          AND m.user_id = (SELECT nullif(current_setting('app.user_id', true), '')::uuid)));
CREATE POLICY invitation_lookup ON invitations FOR SELECT
    USING (token_hash = (SELECT nullif(current_setting('app.lookup', true), '')));
CREATE POLICY api_key_lookup ON api_keys FOR SELECT
    USING (key_hash = (SELECT nullif(current_setting('app.lookup', true), '')));
