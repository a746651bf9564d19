-- The job queue and its scheduler, and the email outbox (SQLite; system tables, see
-- `crate::jobs` and the PostgreSQL twin of this migration for the design). `queue` is
-- the job's org, or the nil UUID for system jobs, generated from `org_id`; `job_queues`
-- counts each queue's pending (queued or running) jobs, kept by the triggers below, and
-- records when it was last served. SQLite has a single writer (claims run under BEGIN
-- IMMEDIATE), so a claim needs no row locks.

-- The job queue is a system table: the scheduler must see every org's queue to be fair.
-- A tenant job names its org in org_id; the worker enters that org's scope to run it.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 5,
    run_at INTEGER NOT NULL,
    locked_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    queue TEXT
        GENERATED ALWAYS AS (coalesce(org_id, '00000000-0000-0000-0000-000000000000')) VIRTUAL
);
CREATE INDEX jobs_ready_idx ON jobs (status, run_at);
CREATE INDEX jobs_org_ready_idx ON jobs (org_id, status, run_at);
CREATE INDEX jobs_claim_idx ON jobs (queue, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (locked_until) WHERE status = 'running';

CREATE TABLE job_queues (
    queue TEXT PRIMARY KEY,
    pending INTEGER NOT NULL DEFAULT 0,
    last_served_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX job_queues_turn_idx ON job_queues (last_served_at, queue) WHERE pending > 0;

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

-- Email waiting for delivery (a system table: the worker drains every org's).
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX outbox_pending_idx ON outbox (status, created_at);
-- Outbox messages waiting for delivery, oldest first (the CLI and the drain).
CREATE INDEX outbox_created_idx ON outbox (created_at, id);
