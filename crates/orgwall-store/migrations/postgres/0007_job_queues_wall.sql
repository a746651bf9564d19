-- The fairness queues inside the wall (issue 15): `job_queues` holds one row per org
-- (how many of its jobs are pending, when it was last served). As a plain global table
-- any tenant transaction could read every org's counts and rewrite them (starve another
-- org, jump the queue). Now only the job system reaches it:
--   - forced row-level security with one policy: visible and writable only to a
--     transaction named `jobs` (`Db::system("jobs")`: the worker's claim, the purge's
--     clean-up) or `job_queues`;
--   - the statement triggers on `jobs` that keep the counts run with `app.system` set to
--     `job_queues` for their own duration (a function-level SET is restored when the
--     function returns), so a tenant inserting its own job still counts it, and gains
--     nothing else: no other system table answers to that name.
ALTER TABLE job_queues ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_queues FORCE ROW LEVEL SECURITY;
CREATE POLICY job_system ON job_queues
    USING (current_setting('app.system', true) IN ('jobs', 'job_queues'))
    WITH CHECK (current_setting('app.system', true) IN ('jobs', 'job_queues'));

ALTER FUNCTION orgwall_job_queues_ins() SET app.system = 'job_queues';
ALTER FUNCTION orgwall_job_queues_upd() SET app.system = 'job_queues';
ALTER FUNCTION orgwall_job_queues_del() SET app.system = 'job_queues';
