-- The placement directory (issue 12): where each organization's data plane lives.
--   shared    its rows in the control database's shared tables (the default);
--   schema    its own schema `location` in the control database, holding the data-plane
--             tables with the same walls (forced RLS, the org_isolation policy, grants);
--   database  its own database `location` on the server `target` (not yet served).
-- A global table of the control plane: one row per org, written when the org is
-- created and by `orgwall placement set`, read with the org's access (the same flight as
-- its membership or API key), so a change bumps the org's access generation like any
-- other access change and every instance routes the org to the same place.
CREATE TABLE placements (
    org_id uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    kind text NOT NULL DEFAULT 'shared' CHECK (kind IN ('shared', 'schema', 'database')),
    target text,
    location text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT placements_location_check CHECK ((kind = 'shared') = (location IS NULL)),
    CONSTRAINT placements_location_key UNIQUE (target, location)
);

INSERT INTO placements (org_id, created_at, updated_at) SELECT id, created_at, created_at FROM orgs;

CREATE TRIGGER placements_access_changed AFTER UPDATE OR DELETE ON placements
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
