-- Hangar job store, PostgreSQL flavour. The SQLite flavour in migrations/sqlite has the same
-- tables and columns; times there are integer Unix milliseconds.

CREATE TABLE hangar_jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT        NOT NULL,
    queue            TEXT        NOT NULL,
    args             JSONB       NOT NULL,
    state            TEXT        NOT NULL,
    attempt          INTEGER     NOT NULL DEFAULT 0,
    max_attempts     INTEGER     NOT NULL,
    snoozes          INTEGER     NOT NULL DEFAULT 0,
    priority         SMALLINT    NOT NULL DEFAULT 0,
    run_at           TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempted_at     TIMESTAMPTZ,
    finalized_at     TIMESTAMPTZ,
    workspace_id     TEXT,
    idempotency_key  TEXT,
    last_error       TEXT,
    last_error_class TEXT,
    lease_token      BIGINT,
    leased_by        TEXT,
    lease_expires_at TIMESTAMPTZ,
    CONSTRAINT hangar_jobs_state_check CHECK (state IN
        ('available', 'scheduled', 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    CONSTRAINT hangar_jobs_max_attempts_check CHECK (max_attempts >= 1)
);

-- A queue table churns: every claim and completion leaves a dead row version and a dead
-- entry in the runnable index, which claims must step over until VACUUM removes it. Vacuum
-- this table after a fixed number of changes (not a fraction of a growing table), without
-- the cost-based throttle.
ALTER TABLE hangar_jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 50000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 20000,
    autovacuum_vacuum_cost_delay = 0
);

-- Idempotency key unique per kind, for as long as the job row exists.
CREATE UNIQUE INDEX hangar_jobs_idempotency_key ON hangar_jobs (kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The claim query: runnable rows of one queue in priority, run_at, id order.
CREATE INDEX hangar_jobs_runnable ON hangar_jobs (queue, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
-- The rescuer: running rows whose lease ran out.
CREATE INDEX hangar_jobs_leases ON hangar_jobs (lease_expires_at) WHERE state = 'running';
-- The pruner. BRIN, not B-tree: every completion would otherwise insert an index entry, and
-- finished rows are laid down roughly in finalized_at order anyway.
CREATE INDEX hangar_jobs_finalized_brin ON hangar_jobs USING brin (finalized_at);
-- Operators list failed jobs; they are few among many completed ones.
CREATE INDEX hangar_jobs_failed ON hangar_jobs (id) WHERE state = 'failed';

CREATE TABLE hangar_job_attempts (
    job_id        BIGINT      NOT NULL REFERENCES hangar_jobs (id) ON DELETE CASCADE,
    attempt       INTEGER     NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL,
    error_class   TEXT,
    error         TEXT,
    http_status   INTEGER,
    next_delay_ms BIGINT,
    decision      TEXT,
    worker        TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE hangar_alerts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id    TEXT,
    kind            TEXT        NOT NULL,
    severity        TEXT        NOT NULL,
    message         TEXT        NOT NULL,
    job_id          BIGINT,
    integration     TEXT,
    incident_key    TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    occurrences     INTEGER     NOT NULL DEFAULT 1,
    acknowledged_at TIMESTAMPTZ,
    resolved_at     TIMESTAMPTZ
);

-- One open alert per incident: a repeat raises occurrences instead of a new row.
CREATE UNIQUE INDEX hangar_alerts_open_incident ON hangar_alerts (incident_key)
    WHERE resolved_at IS NULL;

CREATE INDEX hangar_alerts_open_job ON hangar_alerts (job_id) WHERE resolved_at IS NULL;

-- Wake idle pools the moment a job becomes runnable now. Notifications with the same payload
-- in one transaction collapse into one, so a batch insert wakes a queue once.
CREATE FUNCTION hangar_notify_available() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hangar_jobs', NEW.queue);
    RETURN NULL;
END;
$$;

CREATE TRIGGER hangar_jobs_notify_insert AFTER INSERT ON hangar_jobs
    FOR EACH ROW WHEN (NEW.state = 'available') EXECUTE FUNCTION hangar_notify_available();
CREATE TRIGGER hangar_jobs_notify_update AFTER UPDATE OF state ON hangar_jobs
    FOR EACH ROW WHEN (NEW.state = 'available' AND OLD.state <> 'available')
    EXECUTE FUNCTION hangar_notify_available();
