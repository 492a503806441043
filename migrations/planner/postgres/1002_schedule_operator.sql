-- Where a schedule comes from, what an operator chose, and the runs an operator started.
--
-- source_file: the schedule file a file schedule was last synced from (NULL for API ones).
-- definition_digest: a digest of the definition its owner (file or API) last wrote (spec,
--   kind, args, queue, priority, enabled, workspace): a re-sync that writes the same
--   definition keeps the operator's choice, a changed definition ends it.
-- operator_enabled: an operator's enable (true) or disable (false) from the dashboard, the
--   API or the CLI; NULL when the definition's `enabled` applies. It holds across re-syncs
--   until the owner changes that schedule's definition.
-- run_now_job_id / run_now_at: the last job an operator started with "run now" (outside
--   the slots, keyed `hangar:run-now:<id>:<millis>`, so it never takes a slot's key).
ALTER TABLE hangar_schedules ADD COLUMN source_file TEXT;
ALTER TABLE hangar_schedules ADD COLUMN definition_digest TEXT;
ALTER TABLE hangar_schedules ADD COLUMN operator_enabled BOOLEAN;
ALTER TABLE hangar_schedules ADD COLUMN operator_changed_at TIMESTAMPTZ;
ALTER TABLE hangar_schedules ADD COLUMN run_now_job_id BIGINT;
ALTER TABLE hangar_schedules ADD COLUMN run_now_at TIMESTAMPTZ;
