-- Placement rules (issue 12, item 4): where a new organization's data plane goes. One
-- row per plan that has a rule of its own, and at most one server default (plan '*');
-- an org is placed by its plan's rule, else by the default, else shared, when it is
-- created and when its plan changes while it holds no data-plane row
-- (`orgwall placement rule set PLAN|default KIND`). Stored here, not in a flag, so every
-- instance and the CLI place alike. A global table of the control plane.
CREATE TABLE placement_rules (
    plan text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('shared', 'schema', 'database')),
    target text REFERENCES placement_targets (name),
    updated_at timestamptz NOT NULL,
    CONSTRAINT placement_rules_target_check CHECK (target IS NULL OR kind = 'database')
);
