-- orgwall's workspace (PostgreSQL): projects, tickets with their history and comments,
-- notes and files, all tenant tables. Every tenant table: org_id NOT NULL -> orgs ON
-- DELETE CASCADE, key (org_id, id), composite foreign keys to other tenant tables,
-- indexes leading with org_id. Row-level security (ENABLE + FORCE + the org_isolation
-- policy) and grants to the server role are applied by the migration runner.

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
