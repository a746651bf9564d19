-- Announces changes of access data to every orgwall instance (their access caches listen
-- on the channel orgwall_access; see access/cache.rs). pg_notify is transactional: the
-- announcement is delivered when, and only if, the change commits.
--   org:<id>   the org's row, plan, roles, memberships or API keys changed
--   user:<id>  one of the user's sessions was revoked, removed or changed its active org
--   all        a plan changed (it may be any org's)
CREATE FUNCTION orgwall_access_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    IF TG_TABLE_NAME = 'orgs' THEN
        PERFORM pg_notify('orgwall_access', 'org:' || r.id::text);
    ELSIF TG_TABLE_NAME = 'sessions' THEN
        PERFORM pg_notify('orgwall_access', 'user:' || r.user_id::text);
    ELSIF TG_TABLE_NAME = 'plans' THEN
        PERFORM pg_notify('orgwall_access', 'all');
    ELSE
        PERFORM pg_notify('orgwall_access', 'org:' || r.org_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orgs_access_changed AFTER UPDATE OR DELETE ON orgs
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER memberships_access_changed AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER roles_access_changed AFTER UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER api_keys_access_changed AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER plans_access_changed AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_access_changed();
CREATE TRIGGER sessions_access_changed AFTER UPDATE OF revoked_at, active_org_id OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION orgwall_access_changed();
