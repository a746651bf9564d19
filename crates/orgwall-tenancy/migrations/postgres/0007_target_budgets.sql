-- A connection budget per target server (issue 12): how many connections each instance
-- may hold to the placement databases on that server together
-- (`orgwall placement target add NAME URL --max-connections N`, or `target set`). NULL:
-- the instance's own `--db-max-connections`, as for the control server. Servers differ
-- (a large dedicated one beside a small shared one), so one value for all of them either
-- starves the large one or overruns the small one's max_connections.
ALTER TABLE placement_targets ADD COLUMN max_connections integer
    CONSTRAINT placement_targets_max_connections_check
    CHECK (max_connections BETWEEN 1 AND 10000);
