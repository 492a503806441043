-- The cron planner's schedules (hangar-schedules). 0002 is taken by the events table of
-- another branch; sqlx applies migrations by version and accepts the gap.
--
-- One row per schedule, from a schedule file (source 'file', synced at planner start) or
-- created through the Rust API by the integrations (source 'api', usually one per workspace,
-- integration and data type). Every planner process reads and writes the same rows, so they
-- share one state: a row is claimed with FOR UPDATE SKIP LOCKED, planned, and its next_run_at
-- moved past now in the same transaction that inserts the job.

CREATE TABLE hangar_schedules (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             TEXT        NOT NULL,
    source           TEXT        NOT NULL,
    workspace_id     TEXT,
    integration      TEXT,
    data_type        TEXT,
    -- A 6-field cron expression or a frequency keyword: hourly, every_6_hours, daily
    -- (planned), realtime, manual (stored, never planned).
    spec             TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    args             JSONB       NOT NULL DEFAULT '{}',
    -- NULL: the queue of the pool that runs the kind.
    queue            TEXT,
    priority         SMALLINT    NOT NULL DEFAULT 0,
    enabled          BOOLEAN     NOT NULL DEFAULT true,
    -- Due time = slot + offset_ms (a stable hash of the name modulo the period for
    -- frequencies; 0 for cron expressions).
    offset_ms        BIGINT      NOT NULL DEFAULT 0,
    -- The next due time; NULL when disabled or never planned.
    next_run_at      TIMESTAMPTZ,
    -- The slot (nominal time) of the last job enqueued, that job, and when.
    last_slot_at     TIMESTAMPTZ,
    last_job_id      BIGINT,
    last_enqueued_at TIMESTAMPTZ,
    -- Slots skipped because the previous run was still active.
    skipped_count    BIGINT      NOT NULL DEFAULT 0,
    last_skipped_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT hangar_schedules_name_key UNIQUE (name),
    CONSTRAINT hangar_schedules_source_check CHECK (source IN ('file', 'api')),
    CONSTRAINT hangar_schedules_offset_check CHECK (offset_ms >= 0)
);

-- Every planned row is rewritten once per slot: vacuum after a fixed number of changes, not a
-- fraction of the table, so 100 000 hourly schedules do not pile up dead versions.
ALTER TABLE hangar_schedules SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 20000
);

-- The planner's claim (enabled AND next_run_at <= now() ORDER BY next_run_at LIMIT n) and its
-- sleep (min(next_run_at)) read this index only: cheap at 100 000 rows.
CREATE INDEX hangar_schedules_due ON hangar_schedules (next_run_at) WHERE enabled;
-- The integrations look up a workspace's schedules.
CREATE INDEX hangar_schedules_workspace ON hangar_schedules (workspace_id, integration, data_type);
