-- The fairness queues inside the wall (issue 15; see the PostgreSQL migration 0007). The
-- counts move to the base table `job_queues_rows` (SQLite rewrites the counting triggers
-- on `jobs_rows` to the new name), read through the view `job_queues`, which shows rows
-- only to the job system's named transaction (`app_system() IS 'jobs'`: the worker's
-- claim, the purge's clean-up) and forwards its updates and deletes. The authorizer
-- refuses any statement that reads or writes a `*_rows` table itself, so a tenant
-- transaction reaches the queues neither through the view (no rows) nor around it;
-- the counting triggers still count its own jobs.
ALTER TABLE job_queues RENAME TO job_queues_rows;

-- (`queue IS NOT NULL` is always true: it makes every read of the view read a column, so
-- SQLite never reports a `count(*)` over it as a column-less read of the base table.)
CREATE VIEW job_queues AS
    SELECT queue, pending, last_served_at FROM job_queues_rows
    WHERE app_system() IS 'jobs' AND queue IS NOT NULL;

CREATE TRIGGER job_queues_update INSTEAD OF UPDATE ON job_queues
BEGIN
    UPDATE job_queues_rows SET pending = NEW.pending, last_served_at = NEW.last_served_at
    WHERE queue = OLD.queue;
END;

CREATE TRIGGER job_queues_delete INSTEAD OF DELETE ON job_queues
BEGIN
    DELETE FROM job_queues_rows WHERE queue = OLD.queue;
END;
