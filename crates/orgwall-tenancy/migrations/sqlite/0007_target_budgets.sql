-- A connection budget per target server (issue 12; see the PostgreSQL migration). SQLite
-- has no target servers; the column keeps the two control planes alike.
ALTER TABLE placement_targets ADD COLUMN max_connections integer
    CHECK (max_connections BETWEEN 1 AND 10000);
