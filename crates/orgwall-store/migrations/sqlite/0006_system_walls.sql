-- The job queue and the outbox are system tables (issue 15): global, but their rows carry
-- org_id and stay inside the database wall. Their rows move behind the runner-generated
-- views `jobs` and `outbox` (filtering on app_system() or app_org()) with guard triggers,
-- like tenant tables: a tenant transaction sees only its own org's rows, the named system
-- transaction of each table every row. Renaming keeps the rows, indexes and the
-- job_queues triggers (SQLite rewrites them to the new name).
ALTER TABLE jobs RENAME TO jobs_rows;
ALTER TABLE outbox RENAME TO outbox_rows;
