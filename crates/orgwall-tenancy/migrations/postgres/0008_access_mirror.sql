-- The access mirror (issue 12): an org placed in a database of its own keeps a copy of its
-- access generation there (`access_mirror` in that database), so a read from a cached
-- scope checks its access in the same flight as its data, on that database alone, instead
-- of opening a second transaction on the control database for the check.
--
-- The changing transaction must learn which orgs' generations it bumped, whatever
-- statement did it: the trigger that bumps a generation also notes the org in the
-- transaction-local setting `orgwall.bumped` (comma-separated ids). The committing
-- transaction reads it with the placements of those orgs just before COMMIT, and after
-- COMMIT writes each database-placed org's new generation into its database's mirror
-- before the change is answered (see the PostgreSQL backend's commit).
CREATE OR REPLACE FUNCTION orgwall_access_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    r record;
    d uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    IF TG_TABLE_NAME = 'orgs' THEN
        d := r.id;
        PERFORM pg_notify('orgwall_access', 'org:' || r.id::text);
    ELSIF TG_TABLE_NAME = 'sessions' THEN
        d := r.user_id;
        PERFORM pg_notify('orgwall_access', 'user:' || r.user_id::text);
    ELSIF TG_TABLE_NAME = 'plans' THEN
        d := '00000000-0000-0000-0000-000000000000';
        PERFORM pg_notify('orgwall_access', 'all');
    ELSE
        d := r.org_id;
        PERFORM pg_notify('orgwall_access', 'org:' || r.org_id::text);
    END IF;
    INSERT INTO access_generations AS g (dep, gen) VALUES (d, 1)
        ON CONFLICT ON CONSTRAINT access_generations_pkey DO UPDATE SET gen = g.gen + 1;
    IF TG_TABLE_NAME NOT IN ('sessions', 'plans')
       AND position(d::text IN coalesce(current_setting('orgwall.bumped', true), '')) = 0 THEN
        PERFORM set_config('orgwall.bumped',
            coalesce(nullif(current_setting('orgwall.bumped', true), '') || ',', '') || d::text,
            true);
    END IF;
    RETURN NULL;
END
$$;
