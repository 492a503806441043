-- A sync run by its job: every run's start closes the runs its job left `running` (an attempt
-- that died), and an event's page lists the runs of the jobs it started. Without this index
-- both read every run kept (30 days of them), once per run start.
CREATE INDEX hangar_sync_runs_job ON hangar_sync_runs (job_id) WHERE job_id IS NOT NULL;
