-- The cron planner's schedules, SQLite flavour: the same table and columns as
-- migrations/postgres/0003_schedules.sql, with times as integer Unix milliseconds. 0002 is
-- taken by the events table of another branch; sqlx accepts the gap.

CREATE TABLE hangar_schedules (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    workspace_id     TEXT,
    integration      TEXT,
    data_type        TEXT,
    spec             TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    args             TEXT    NOT NULL DEFAULT '{}',
    queue            TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,
    enabled          INTEGER NOT NULL DEFAULT 1,
    offset_ms        INTEGER NOT NULL DEFAULT 0,
    next_run_at      INTEGER,
    last_slot_at     INTEGER,
    last_job_id      INTEGER,
    last_enqueued_at INTEGER,
    skipped_count    INTEGER NOT NULL DEFAULT 0,
    last_skipped_at  INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CONSTRAINT hangar_schedules_name_key UNIQUE (name),
    CONSTRAINT hangar_schedules_source_check CHECK (source IN ('file', 'api')),
    CONSTRAINT hangar_schedules_offset_check CHECK (offset_ms >= 0)
);

CREATE INDEX hangar_schedules_due ON hangar_schedules (next_run_at) WHERE enabled;
CREATE INDEX hangar_schedules_workspace ON hangar_schedules (workspace_id, integration, data_type);
