-- The placement directory (see the PostgreSQL twin). On SQLite an org is `shared` (its
-- rows in this file's shared tables); `database` (a file of its own) is not yet served.
CREATE TABLE placements (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'shared' CHECK (kind IN ('shared', 'schema', 'database')),
    target TEXT,
    location TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT placements_location_check CHECK ((kind = 'shared') = (location IS NULL)),
    CONSTRAINT placements_location_key UNIQUE (target, location)
);

INSERT INTO placements (org_id, created_at, updated_at) SELECT id, created_at, created_at FROM orgs;
