-- The kernel's tables (module `tenancy`), PostgreSQL: identity and access, the control
-- plane every service shares. Global tables first (the allowlist), then tenant tables.
-- Every tenant table: org_id NOT NULL -> orgs ON DELETE CASCADE, key (org_id, id),
-- composite foreign keys to other tenant tables, indexes leading with org_id.
-- Row-level security (ENABLE + FORCE + the org_isolation policy) and grants to the
-- server role are applied by the migration runner to every tenant table, including
-- tables added by later migrations and other modules; the extra read policies below are
-- the documented cross-org reads.

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

-- Plans (global, configurable by editing rows).
CREATE TABLE plans (
    name text PRIMARY KEY,
    max_members bigint NOT NULL CHECK (max_members >= 0),
    max_projects bigint NOT NULL CHECK (max_projects >= 0),
    max_tickets bigint NOT NULL CHECK (max_tickets >= 0),
    max_storage_bytes bigint NOT NULL CHECK (max_storage_bytes >= 0),
    rate_limit_per_minute integer NOT NULL CHECK (rate_limit_per_minute > 0)
);
INSERT INTO plans VALUES
    ('free', 50, 20, 5000, 104857600, 1200),
    ('pro', 500, 200, 100000, 10737418240, 6000),
    ('enterprise', 100000, 100000, 100000000, 1099511627776, 60000);

-- rate_limit_per_minute: the org's override of its plan's rate limit.
CREATE TABLE orgs (
    id uuid PRIMARY KEY,
    slug text NOT NULL CONSTRAINT orgs_slug_key UNIQUE,
    name text NOT NULL,
    plan text NOT NULL DEFAULT 'free',
    deleting_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
    CONSTRAINT orgs_plan_fkey FOREIGN KEY (plan) REFERENCES plans (name)
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

-- Announces changes of access data to every instance (their access caches listen on the
-- channel orgwall_access; see access/cache.rs). pg_notify is transactional: the
-- announcement is delivered when, and only if, the change commits.
--   org:<id>   the org's row, plan, roles, memberships or API keys changed
--   user:<id>  one of the user's sessions was revoked, removed or changed its active org
--   all        a plan changed (it may be any org's)
CREATE FUNCTION orgwall_access_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    IF TG_TABLE_NAME = 'orgs' THEN
        PERFORM pg_notify('orgwall_access', 'org:' || r.id::text);
    ELSIF TG_TABLE_NAME = 'sessions' THEN
        PERFORM pg_notify('orgwall_access', 'user:' || r.user_id::text);
    ELSIF TG_TABLE_NAME = 'plans' THEN
        PERFORM pg_notify('orgwall_access', 'all');
    ELSE
        PERFORM pg_notify('orgwall_access', 'org:' || r.org_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orgs_access_changed AFTER UPDATE OR DELETE ON orgs
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER memberships_access_changed AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER roles_access_changed AFTER UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER api_keys_access_changed AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER plans_access_changed AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER sessions_access_changed AFTER UPDATE OF revoked_at, active_org_id OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
