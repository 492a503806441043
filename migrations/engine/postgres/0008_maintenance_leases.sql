-- Leases of the maintenance services: one row per service and queue (`prune:<queue>`). The
-- process whose row is unexpired does the work; every other process skips it until the
-- holder stops renewing (it renews before each batch), so a queue is pruned by one process
-- at a time however many workers run its pool.
CREATE TABLE hangar_maintenance_leases (
    name       TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- The pruner deletes `WHERE queue = $1 AND state = 'completed' AND finalized_at < $2`: the
-- BRIN index on finalized_at (0001) narrows the range and the queue is a filter on it; a
-- B-tree here would cost an index entry on every completion.
