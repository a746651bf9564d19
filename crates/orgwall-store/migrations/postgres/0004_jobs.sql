-- The job queue and its scheduler, and the email outbox (PostgreSQL; system tables, see
-- `crate::jobs`).
--
-- Fairness: every job belongs to a queue, its org's (or the nil UUID for system jobs, which
-- name no org). `queue` is generated from `org_id`, so no writer can file a job into
-- another org's queue. `job_queues` keeps, per queue, how many jobs are pending (queued or
-- running; maintained by the statement triggers below, so every writer, a bulk insert and
-- the org cascade included, keeps it right) and when the queue was last served. A claim
-- walks the queues with pending jobs in least-recently-served order and takes the first
-- ready job it finds (round robin): one org with a million queued jobs delays another
-- org's next job by at most one claim.

-- The job queue is a system table: the scheduler must see every org's queue to be fair.
-- A tenant job names its org in org_id; the worker enters that org's scope to run it.
CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    org_id uuid REFERENCES orgs (id) ON DELETE CASCADE,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5,
    run_at timestamptz NOT NULL,
    locked_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    queue uuid NOT NULL
        GENERATED ALWAYS AS (coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid)) STORED
);
CREATE INDEX jobs_ready_idx ON jobs (status, run_at);
CREATE INDEX jobs_org_ready_idx ON jobs (org_id, status, run_at);
-- The claim's probe into one queue: its ready jobs in run_at order.
CREATE INDEX jobs_claim_idx ON jobs (queue, run_at, id) WHERE status = 'queued';
-- The reaper: running jobs whose lease expired.
CREATE INDEX jobs_lease_idx ON jobs (locked_until) WHERE status = 'running';

CREATE TABLE job_queues (
    queue uuid PRIMARY KEY,
    pending bigint NOT NULL DEFAULT 0,
    last_served_at timestamptz NOT NULL DEFAULT '1970-01-01T00:00:00Z'
);
-- The claim's walk: queues with pending jobs, least recently served first.
CREATE INDEX job_queues_turn_idx ON job_queues (last_served_at, queue) WHERE pending > 0;

CREATE FUNCTION orgwall_job_queues_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_queues AS q (queue, pending)
        SELECT n.queue, count(*) FROM new_jobs n
        WHERE n.status IN ('queued', 'running') GROUP BY n.queue ORDER BY n.queue
    ON CONFLICT (queue) DO UPDATE SET pending = greatest(q.pending + excluded.pending, 0);
    RETURN NULL;
END $$;

CREATE FUNCTION orgwall_job_queues_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_queues AS q (queue, pending)
        SELECT d.queue, d.delta FROM (
            SELECT n.queue,
                   sum((n.status IN ('queued', 'running'))::int
                       - (o.status IN ('queued', 'running'))::int) AS delta
            FROM new_jobs n JOIN old_jobs o ON o.id = n.id
            GROUP BY n.queue) d
        WHERE d.delta <> 0 ORDER BY d.queue
    ON CONFLICT (queue) DO UPDATE SET pending = greatest(q.pending + excluded.pending, 0);
    RETURN NULL;
END $$;

CREATE FUNCTION orgwall_job_queues_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE job_queues q SET pending = greatest(q.pending - d.n, 0)
    FROM (SELECT o.queue, count(*) AS n FROM old_jobs o
          WHERE o.status IN ('queued', 'running') GROUP BY o.queue) d
    WHERE q.queue = d.queue;
    RETURN NULL;
END $$;

CREATE TRIGGER orgwall_job_queues_ins AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_job_queues_ins();
CREATE TRIGGER orgwall_job_queues_upd AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_job_queues_upd();
CREATE TRIGGER orgwall_job_queues_del AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_job_queues_del();

-- Email waiting for delivery (a system table: the worker drains every org's).
CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    org_id uuid REFERENCES orgs (id) ON DELETE CASCADE,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (status, created_at);
-- Outbox messages waiting for delivery, oldest first (the CLI and the drain).
CREATE INDEX outbox_created_idx ON outbox (created_at, id);
