-- A workspace token's overview: the same partial index as postgres/0029_jobs_by_workspace.sql.
CREATE INDEX hangar_jobs_workspace_open ON hangar_jobs (workspace_id, queue, state)
    WHERE workspace_id IS NOT NULL AND state IN ('available', 'scheduled', 'running', 'retryable', 'failed');
