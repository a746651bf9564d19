-- Online moves (see the PostgreSQL twin): an org moving between placements, one row
-- while its move runs. The server writes none (the authorizer refuses it).
CREATE TABLE placement_moves (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    from_kind TEXT NOT NULL CHECK (from_kind IN ('shared', 'schema', 'database')),
    from_location TEXT,
    from_target TEXT,
    to_kind TEXT NOT NULL CHECK (to_kind IN ('shared', 'schema', 'database')),
    to_location TEXT,
    to_target TEXT,
    phase TEXT NOT NULL CHECK (phase IN ('prepare', 'copy', 'catch_up', 'cleanup')),
    start_lsn TEXT,
    rows_copied INTEGER NOT NULL DEFAULT 0,
    rows_total INTEGER NOT NULL DEFAULT 0,
    changes_applied INTEGER NOT NULL DEFAULT 0,
    pause_ms INTEGER,
    error TEXT,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
