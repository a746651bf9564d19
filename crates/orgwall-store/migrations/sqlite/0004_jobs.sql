-- The job queue's scheduler (system tables, see `crate::jobs` and the PostgreSQL twin of
-- this migration for the design). `queue` is the job's org, or the nil UUID for system
-- jobs, generated from `org_id`; `job_queues` counts each queue's pending (queued or
-- running) jobs, kept by the triggers below, and records when it was last served.
-- SQLite has a single writer (claims run under BEGIN IMMEDIATE), so a claim needs no
-- row locks.
ALTER TABLE jobs ADD COLUMN queue TEXT
    GENERATED ALWAYS AS (coalesce(org_id, '00000000-0000-0000-0000-000000000000')) VIRTUAL;
CREATE INDEX jobs_claim_idx ON jobs (queue, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (locked_until) WHERE status = 'running';

CREATE TABLE job_queues (
    queue TEXT PRIMARY KEY,
    pending INTEGER NOT NULL DEFAULT 0,
    last_served_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX job_queues_turn_idx ON job_queues (last_served_at, queue) WHERE pending > 0;

INSERT INTO job_queues (queue, pending)
    SELECT queue, count(*) FROM jobs WHERE status IN ('queued', 'running') GROUP BY queue;

CREATE TRIGGER orgwall_job_queues_ins AFTER INSERT ON jobs
WHEN NEW.status IN ('queued', 'running')
BEGIN
    INSERT INTO job_queues (queue, pending) VALUES (NEW.queue, 1)
    ON CONFLICT (queue) DO UPDATE SET pending = max(pending + 1, 0);
END;

CREATE TRIGGER orgwall_job_queues_upd AFTER UPDATE OF status ON jobs
WHEN (OLD.status IN ('queued', 'running')) <> (NEW.status IN ('queued', 'running'))
BEGIN
    INSERT INTO job_queues (queue, pending)
    VALUES (NEW.queue, CASE WHEN NEW.status IN ('queued', 'running') THEN 1 ELSE 0 END)
    ON CONFLICT (queue) DO UPDATE SET pending = max(pending
        + CASE WHEN NEW.status IN ('queued', 'running') THEN 1 ELSE -1 END, 0);
END;

CREATE TRIGGER orgwall_job_queues_del AFTER DELETE ON jobs
WHEN OLD.status IN ('queued', 'running')
BEGIN
    UPDATE job_queues SET pending = max(pending - 1, 0) WHERE queue = OLD.queue;
END;

CREATE INDEX outbox_created_idx ON outbox (created_at, id);
