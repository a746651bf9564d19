-- What an org uses, counted as it changes (issues 13 and 16).
--
-- A create checked its quota by counting the org's projects and tickets and summing its
-- file sizes in its own transaction: O(org size) per create (0.7 s per ticket in an org
-- of 1,000,000 tickets, measured by the move benchmark). `org_usage` holds the three
-- numbers, one row per org, kept by the triggers below in the writing transaction, so a
-- quota check reads (and locks) one row.
--
-- It is a tenant table (the runner applies RLS, the policy and grants; the doctor and
-- the catalogue-driven tests walk it) and a *derived* table (`Module::derived_tables`):
-- written only by these triggers, left out of exports, rebuilt by the triggers where a
-- move copies rows into the shared tables. The triggers are ENABLE ALWAYS, as the search
-- terms' (0006), so they also fire under session_replication_role = replica (a move's
-- replay, the bench's COPY seeding). Statement-level with transition tables: a COPY or a
-- cascade of many rows updates the row once per org.
--
-- A decrement only updates (never inserts): the org's row may already be gone (deleting
-- an org, emptying a placement), and a missing row reads as zeros; a row back at zero is
-- deleted. Every writer of counted rows takes the row's lock first (a create in its
-- quota check, a delete before deleting: `quota::lock_for_delete`), so a create waiting
-- for a project's key and that project's delete waiting for the row cannot deadlock. The functions are
-- SECURITY INVOKER: they write as the writer, under its policy.

CREATE TABLE org_usage (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    projects bigint NOT NULL DEFAULT 0,
    tickets bigint NOT NULL DEFAULT 0,
    storage_bytes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id)
);

-- An org that uses nothing has no row (an emptied org is empty: `placement set` and the
-- doctor look for any row of the org). Called by the delete triggers; the org's row is
-- the one their UPDATE just locked.
CREATE FUNCTION orgwall_usage_forget_empty() RETURNS void
LANGUAGE sql SECURITY INVOKER AS $$
    DELETE FROM org_usage
    WHERE org_id = nullif(current_setting('app.org_id', true), '')::uuid
      AND projects = 0 AND tickets = 0 AND storage_bytes = 0;
$$;

CREATE FUNCTION orgwall_usage_projects_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO org_usage AS u (org_id, projects)
    SELECT n.org_id, count(*) FROM orgwall_new_rows n GROUP BY n.org_id
    ON CONFLICT (org_id) DO UPDATE SET projects = u.projects + excluded.projects;
    RETURN NULL;
END
$$;

CREATE FUNCTION orgwall_usage_projects_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    UPDATE org_usage u SET projects = u.projects - d.n
    FROM (SELECT o.org_id, count(*) AS n FROM orgwall_old_rows o GROUP BY o.org_id) d
    WHERE u.org_id = d.org_id;
    PERFORM orgwall_usage_forget_empty();
    RETURN NULL;
END
$$;

CREATE FUNCTION orgwall_usage_tickets_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO org_usage AS u (org_id, tickets)
    SELECT n.org_id, count(*) FROM orgwall_new_rows n GROUP BY n.org_id
    ON CONFLICT (org_id) DO UPDATE SET tickets = u.tickets + excluded.tickets;
    RETURN NULL;
END
$$;

CREATE FUNCTION orgwall_usage_tickets_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    UPDATE org_usage u SET tickets = u.tickets - d.n
    FROM (SELECT o.org_id, count(*) AS n FROM orgwall_old_rows o GROUP BY o.org_id) d
    WHERE u.org_id = d.org_id;
    PERFORM orgwall_usage_forget_empty();
    RETURN NULL;
END
$$;

CREATE FUNCTION orgwall_usage_files_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO org_usage AS u (org_id, storage_bytes)
    SELECT n.org_id, sum(n.size_bytes) FROM orgwall_new_rows n GROUP BY n.org_id
    ON CONFLICT (org_id) DO UPDATE SET storage_bytes = u.storage_bytes + excluded.storage_bytes;
    RETURN NULL;
END
$$;

CREATE FUNCTION orgwall_usage_files_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    UPDATE org_usage u SET storage_bytes = u.storage_bytes - d.n
    FROM (SELECT o.org_id, sum(o.size_bytes) AS n FROM orgwall_old_rows o GROUP BY o.org_id) d
    WHERE u.org_id = d.org_id;
    PERFORM orgwall_usage_forget_empty();
    RETURN NULL;
END
$$;

-- A file whose recorded size changes (none does today; the count must not drift if one
-- ever does).
CREATE FUNCTION orgwall_usage_files_update() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    UPDATE org_usage u SET storage_bytes = u.storage_bytes - OLD.size_bytes + NEW.size_bytes
    WHERE u.org_id = NEW.org_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER orgwall_usage_projects_insert AFTER INSERT ON projects
    REFERENCING NEW TABLE AS orgwall_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_usage_projects_insert();
CREATE TRIGGER orgwall_usage_projects_delete AFTER DELETE ON projects
    REFERENCING OLD TABLE AS orgwall_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_usage_projects_delete();
CREATE TRIGGER orgwall_usage_tickets_insert AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS orgwall_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_usage_tickets_insert();
CREATE TRIGGER orgwall_usage_tickets_delete AFTER DELETE ON tickets
    REFERENCING OLD TABLE AS orgwall_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_usage_tickets_delete();
CREATE TRIGGER orgwall_usage_files_insert AFTER INSERT ON files
    REFERENCING NEW TABLE AS orgwall_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_usage_files_insert();
CREATE TRIGGER orgwall_usage_files_delete AFTER DELETE ON files
    REFERENCING OLD TABLE AS orgwall_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_usage_files_delete();
CREATE TRIGGER orgwall_usage_files_update AFTER UPDATE OF size_bytes ON files
    FOR EACH ROW WHEN (OLD.size_bytes IS DISTINCT FROM NEW.size_bytes)
    EXECUTE FUNCTION orgwall_usage_files_update();

ALTER TABLE projects ENABLE ALWAYS TRIGGER orgwall_usage_projects_insert;
ALTER TABLE projects ENABLE ALWAYS TRIGGER orgwall_usage_projects_delete;
ALTER TABLE tickets ENABLE ALWAYS TRIGGER orgwall_usage_tickets_insert;
ALTER TABLE tickets ENABLE ALWAYS TRIGGER orgwall_usage_tickets_delete;
ALTER TABLE files ENABLE ALWAYS TRIGGER orgwall_usage_files_insert;
ALTER TABLE files ENABLE ALWAYS TRIGGER orgwall_usage_files_delete;
ALTER TABLE files ENABLE ALWAYS TRIGGER orgwall_usage_files_update;

-- The rows that exist already (the force lifted for the backfill and restored in the
-- same transaction, as in 0006).
ALTER TABLE projects NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE files NO FORCE ROW LEVEL SECURITY;
INSERT INTO org_usage (org_id, projects, tickets, storage_bytes)
SELECT o.org_id,
       (SELECT count(*) FROM projects p WHERE p.org_id = o.org_id),
       (SELECT count(*) FROM tickets t WHERE t.org_id = o.org_id),
       (SELECT coalesce(sum(f.size_bytes), 0) FROM files f WHERE f.org_id = o.org_id)
FROM (SELECT org_id FROM projects UNION SELECT org_id FROM tickets
      UNION SELECT org_id FROM files) o;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
ALTER TABLE tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
