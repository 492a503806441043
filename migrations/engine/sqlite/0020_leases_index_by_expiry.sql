-- The rescuer's index keyed by the lease's presence instead of `state = 'running'`. A lease
-- (lease_expires_at) is set only while a job runs: every way out of `running` clears it. The
-- rescuer's `lease_expires_at < now` implies the new predicate, so it still goes by this
-- index; a completion, heartbeat, failure or release (`WHERE id … AND state = 'running'`)
-- does not, so it goes by the primary key. With the old predicate, and statistics taken
-- while history held no running row, PostgreSQL estimated one running row and walked this
-- index (and every dead entry it had collected) for each batch of completions: draining beside
-- 200 000 finished rows took 5–8× as long as on an empty table (BENCHMARKS.md).
-- Numbered 20, a free number: it depends only on 0001.
UPDATE hangar_jobs SET lease_expires_at = NULL
    WHERE lease_expires_at IS NOT NULL AND state <> 'running';
DROP INDEX hangar_jobs_leases;
CREATE INDEX hangar_jobs_leases ON hangar_jobs (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
