-- Access generations (issue 15): a counter per org and per user, bumped in the changing
-- transaction by the same trigger that announces the change on orgwall_access. The
-- announcement reaches other instances asynchronously; the counter is read in the very
-- flight of every tenant transaction opened from a cached scope (a column of the scope
-- prelude, no extra statement), so a scope whose cached access predates a committed
-- change is caught before its transaction commits or its result is used.
--   dep = an org's id (its row, plan, roles, memberships, API keys changed),
--         a user's id (a session of theirs was revoked or changed its active org),
--         the nil UUID (a plan changed: it may be any org's).
-- A global table: it names ids and counts, no tenant data.
CREATE TABLE access_generations (
    dep uuid PRIMARY KEY,
    gen bigint NOT NULL
);

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
    RETURN NULL;
END
$$;
