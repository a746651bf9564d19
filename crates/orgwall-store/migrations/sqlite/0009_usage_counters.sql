-- What an org uses, counted as it changes: PostgreSQL's migration 0008 (issues 13 and 16),
-- so a quota check reads one row instead of counting the org's rows. A tenant table here
-- too (the runner generates its scoped view and guard triggers) and a derived one: kept
-- only by the triggers below on the base tables (named `orgwall_usage_*`, beside the
-- rows they count, after the guard triggers checked those rows), never exported, and
-- counted again by these triggers in an org file a move copies rows into. A decrement
-- only updates: the org's row may be gone already (a purge, a move emptying a
-- placement); a missing row reads as zeros, and a row back at zero is deleted (an
-- emptied org is empty).

CREATE TABLE org_usage_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    projects INTEGER NOT NULL DEFAULT 0,
    tickets INTEGER NOT NULL DEFAULT 0,
    storage_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id)
);

CREATE TRIGGER orgwall_usage_projects_rows_ins AFTER INSERT ON projects_rows BEGIN
    INSERT INTO org_usage_rows (org_id, projects) VALUES (NEW.org_id, 1)
    ON CONFLICT (org_id) DO UPDATE SET projects = projects + 1;
END;
CREATE TRIGGER orgwall_usage_projects_rows_del AFTER DELETE ON projects_rows BEGIN
    UPDATE org_usage_rows SET projects = projects - 1 WHERE org_id = OLD.org_id;
    DELETE FROM org_usage_rows WHERE org_id = OLD.org_id
        AND projects = 0 AND tickets = 0 AND storage_bytes = 0;
END;
CREATE TRIGGER orgwall_usage_tickets_rows_ins AFTER INSERT ON tickets_rows BEGIN
    INSERT INTO org_usage_rows (org_id, tickets) VALUES (NEW.org_id, 1)
    ON CONFLICT (org_id) DO UPDATE SET tickets = tickets + 1;
END;
CREATE TRIGGER orgwall_usage_tickets_rows_del AFTER DELETE ON tickets_rows BEGIN
    UPDATE org_usage_rows SET tickets = tickets - 1 WHERE org_id = OLD.org_id;
    DELETE FROM org_usage_rows WHERE org_id = OLD.org_id
        AND projects = 0 AND tickets = 0 AND storage_bytes = 0;
END;
CREATE TRIGGER orgwall_usage_files_rows_ins AFTER INSERT ON files_rows BEGIN
    INSERT INTO org_usage_rows (org_id, storage_bytes) VALUES (NEW.org_id, NEW.size_bytes)
    ON CONFLICT (org_id) DO UPDATE SET storage_bytes = storage_bytes + NEW.size_bytes;
END;
CREATE TRIGGER orgwall_usage_files_rows_del AFTER DELETE ON files_rows BEGIN
    UPDATE org_usage_rows SET storage_bytes = storage_bytes - OLD.size_bytes
    WHERE org_id = OLD.org_id;
    DELETE FROM org_usage_rows WHERE org_id = OLD.org_id
        AND projects = 0 AND tickets = 0 AND storage_bytes = 0;
END;
CREATE TRIGGER orgwall_usage_files_rows_upd AFTER UPDATE OF size_bytes ON files_rows
WHEN OLD.size_bytes IS NOT NEW.size_bytes BEGIN
    UPDATE org_usage_rows SET storage_bytes = storage_bytes - OLD.size_bytes + NEW.size_bytes
    WHERE org_id = NEW.org_id;
END;

-- The rows that exist already.
INSERT INTO org_usage_rows (org_id, projects, tickets, storage_bytes)
SELECT o.org_id,
       (SELECT count(*) FROM projects_rows p WHERE p.org_id = o.org_id),
       (SELECT count(*) FROM tickets_rows t WHERE t.org_id = o.org_id),
       (SELECT coalesce(sum(f.size_bytes), 0) FROM files_rows f WHERE f.org_id = o.org_id)
FROM (SELECT org_id FROM projects_rows UNION SELECT org_id FROM tickets_rows
      UNION SELECT org_id FROM files_rows) o;
