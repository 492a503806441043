-- Leases of the maintenance services: one row per service and queue (`prune:<queue>`). The
-- process whose row is unexpired does the work; every other process skips it until the
-- holder stops renewing (it renews before each batch), so a queue is pruned by one process
-- at a time, also when several processes share the file. Times are Unix milliseconds.
CREATE TABLE hangar_maintenance_leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The pruner deletes one queue's completed rows past its retention:
-- `WHERE queue = ?1 AND state = 'completed' AND finalized_at < ?2`.
DROP INDEX hangar_jobs_completed;
CREATE INDEX hangar_jobs_completed ON hangar_jobs (queue, finalized_at) WHERE state = 'completed';
