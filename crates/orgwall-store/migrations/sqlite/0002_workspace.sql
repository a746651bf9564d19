-- orgwall's workspace (SQLite): projects, tickets with their history and comments,
-- notes and files, all tenant tables. Every tenant table: org_id NOT NULL -> orgs ON
-- DELETE CASCADE, key (org_id, id), composite foreign keys to other tenant tables,
-- indexes leading with org_id. SQLite stores tenant rows in <table>_rows; the migration
-- runner generates the scoped view <table> (org_id = app_org()), its INSTEAD OF triggers
-- and the guard triggers on the base table.
-- UUIDs are TEXT, timestamps INTEGER microseconds since the epoch, booleans INTEGER 0/1.

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

-- Cascades between tenant tables (projects -> tickets, tickets -> comments and events)
-- are declared by the module; the runner generates their named triggers.
