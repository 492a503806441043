-- Hangar job store, SQLite flavour: the same tables and columns as migrations/postgres, with
-- times as integer Unix milliseconds (compared and indexed as plain integers).

CREATE TABLE hangar_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    snoozes          INTEGER NOT NULL DEFAULT 0,
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    attempted_at     INTEGER,
    finalized_at     INTEGER,
    workspace_id     TEXT,
    idempotency_key  TEXT,
    last_error       TEXT,
    last_error_class TEXT,
    lease_token      INTEGER,
    leased_by        TEXT,
    lease_expires_at INTEGER,
    CONSTRAINT hangar_jobs_state_check CHECK (state IN
        ('available', 'scheduled', 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    CONSTRAINT hangar_jobs_max_attempts_check CHECK (max_attempts >= 1)
);

CREATE UNIQUE INDEX hangar_jobs_idempotency_key ON hangar_jobs (kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX hangar_jobs_runnable ON hangar_jobs (queue, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
CREATE INDEX hangar_jobs_leases ON hangar_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX hangar_jobs_completed ON hangar_jobs (finalized_at) WHERE state = 'completed';
CREATE INDEX hangar_jobs_failed ON hangar_jobs (id) WHERE state = 'failed';

CREATE TABLE hangar_job_attempts (
    job_id        INTEGER NOT NULL REFERENCES hangar_jobs (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    error_class   TEXT,
    error         TEXT,
    http_status   INTEGER,
    next_delay_ms INTEGER,
    decision      TEXT,
    worker        TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE hangar_alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id    TEXT,
    kind            TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    job_id          INTEGER,
    integration     TEXT,
    incident_key    TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    occurrences     INTEGER NOT NULL DEFAULT 1,
    acknowledged_at INTEGER,
    resolved_at     INTEGER
);

CREATE UNIQUE INDEX hangar_alerts_open_incident ON hangar_alerts (incident_key)
    WHERE resolved_at IS NULL;

CREATE INDEX hangar_alerts_open_job ON hangar_alerts (job_id) WHERE resolved_at IS NULL;
