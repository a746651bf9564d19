-- Placement rules (see the PostgreSQL twin): a plan's rule, or the default (plan '*').
CREATE TABLE placement_rules (
    plan TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('shared', 'schema', 'database')),
    target TEXT REFERENCES placement_targets (name),
    updated_at INTEGER NOT NULL,
    CONSTRAINT placement_rules_target_check CHECK (target IS NULL OR kind = 'database')
);
