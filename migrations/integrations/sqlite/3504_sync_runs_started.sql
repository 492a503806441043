-- The sync runs chart of every workspace (`GET /sync-runs` on the dashboard without a
-- workspace): runs started in the last hour or day, a range of this index; a workspace's
-- chart uses hangar_sync_runs_workspace.
CREATE INDEX hangar_sync_runs_started ON hangar_sync_runs (started_at);
