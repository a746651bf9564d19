-- Registered target servers (issue 12; see the PostgreSQL migration): the same table in
-- the same catalogue. SQLite serves no target server (an org's database of its own on
-- SQLite is a file under the data directory), so it stays empty here.
CREATE TABLE placement_targets (
    name text PRIMARY KEY
        CHECK (length(name) BETWEEN 1 AND 40 AND name GLOB '[a-z]*' AND name NOT GLOB '*[^a-z0-9-]*'),
    url text NOT NULL,
    created_at text NOT NULL
);
