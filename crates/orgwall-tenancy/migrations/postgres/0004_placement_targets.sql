-- Registered target servers (issue 12): the PostgreSQL servers an org placed in a
-- database of its own may live on (`orgwall placement target add NAME URL`). `url` holds
-- the connection URL with its credentials, so the table is private to the owner: the
-- migration runner revokes every privilege of the server role on it after granting the
-- rest of the schema (the doctor checks), and nothing prints or logs a URL unredacted.
-- A placement names its target (`placements.target`), so a target in use cannot be
-- removed.
CREATE TABLE placement_targets (
    name text PRIMARY KEY
        CONSTRAINT placement_targets_name_check CHECK (name ~ '^[a-z][a-z0-9-]{0,39}$'),
    url text NOT NULL,
    created_at timestamptz NOT NULL
);

ALTER TABLE placements ADD CONSTRAINT placements_target_fkey
    FOREIGN KEY (target) REFERENCES placement_targets (name);
