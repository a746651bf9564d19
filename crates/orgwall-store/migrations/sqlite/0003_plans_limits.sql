-- Plans (global, configurable by editing rows) and per-org rate limit overrides.
CREATE TABLE plans (
    name TEXT PRIMARY KEY,
    max_members INTEGER NOT NULL CHECK (max_members >= 0),
    max_projects INTEGER NOT NULL CHECK (max_projects >= 0),
    max_tickets INTEGER NOT NULL CHECK (max_tickets >= 0),
    max_storage_bytes INTEGER NOT NULL CHECK (max_storage_bytes >= 0),
    rate_limit_per_minute INTEGER NOT NULL CHECK (rate_limit_per_minute > 0)
);
INSERT INTO plans VALUES
    ('free', 50, 20, 5000, 104857600, 1200),
    ('pro', 500, 200, 100000, 10737418240, 6000),
    ('enterprise', 100000, 100000, 100000000, 1099511627776, 60000);
-- SQLite cannot add a foreign key to an existing table; the plan name is checked in code.
ALTER TABLE orgs ADD COLUMN rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute > 0);
