-- Where a schedule comes from, what an operator chose, and the runs an operator started;
-- the same columns as postgres/1002_schedule_operator.sql (times as integer Unix
-- milliseconds, booleans as 0/1).
ALTER TABLE hangar_schedules ADD COLUMN source_file TEXT;
ALTER TABLE hangar_schedules ADD COLUMN definition_digest TEXT;
ALTER TABLE hangar_schedules ADD COLUMN operator_enabled INTEGER;
ALTER TABLE hangar_schedules ADD COLUMN operator_changed_at INTEGER;
ALTER TABLE hangar_schedules ADD COLUMN run_now_job_id INTEGER;
ALTER TABLE hangar_schedules ADD COLUMN run_now_at INTEGER;
