-- A workspace token's overview counts its workspace's unfinished and failed jobs per queue and
-- state (Store::workspace_queue_stats) and lists its latest failures. Partial: jobs without a
-- workspace (benchmarks, the engine's own) and finished ones (completed, cancelled: most rows)
-- are not in it, so the hot path of a queue without workspaces pays nothing.
CREATE INDEX hangar_jobs_workspace_open ON hangar_jobs (workspace_id, queue, state)
    WHERE workspace_id IS NOT NULL AND state IN ('available', 'scheduled', 'running', 'retryable', 'failed');
