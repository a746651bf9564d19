-- Online moves (issue 13): an org moving between placements, one row while its move
-- runs (`orgwall placement move ORG --to KIND`). The row is the move's durable state: a
-- mover that dies resumes from its phase, and the row says where the org came from (what
-- the cleanup removes after the directory flipped) and where it goes. Private to the
-- owner, like the targets: its phase decides what the mover drops, so the server role
-- holds no privilege on it (the runner revokes, the doctor checks).
CREATE TABLE placement_moves (
    org_id uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    from_kind text NOT NULL CHECK (from_kind IN ('shared', 'schema', 'database')),
    from_location text,
    from_target text REFERENCES placement_targets (name),
    to_kind text NOT NULL CHECK (to_kind IN ('shared', 'schema', 'database')),
    to_location text,
    to_target text REFERENCES placement_targets (name),
    phase text NOT NULL CHECK (phase IN ('prepare', 'copy', 'catch_up', 'cleanup')),
    start_lsn pg_lsn,
    rows_copied bigint NOT NULL DEFAULT 0,
    rows_total bigint NOT NULL DEFAULT 0,
    changes_applied bigint NOT NULL DEFAULT 0,
    pause_ms bigint,
    error text,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
