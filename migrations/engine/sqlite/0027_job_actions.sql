-- What operators did to jobs (issue 15): one row per job and action (a retry, a "run now" of
-- a waiting job, a "run again" of a completed one, a cancel), written in the transaction that
-- changes the job's state, by the API, the dashboard or the CLI, alone or as part of a bulk
-- action (`batch_id`, the same for every job of one bulk request). `actor` is the API token's
-- name (the dashboard signs in with a token too) or, from the CLI, the operating-system user.
-- `at` is Unix milliseconds. Rows leave with their job.
CREATE TABLE hangar_job_actions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   INTEGER NOT NULL REFERENCES hangar_jobs (id) ON DELETE CASCADE,
    action   TEXT    NOT NULL
        CONSTRAINT hangar_job_actions_action CHECK (action IN ('retry', 'run_now', 'run_again', 'cancel')),
    actor    TEXT    NOT NULL,
    source   TEXT    NOT NULL
        CONSTRAINT hangar_job_actions_source CHECK (source IN ('api', 'dashboard', 'cli')),
    batch_id TEXT,
    at       INTEGER NOT NULL
);

-- A job's page and `GET /api/v1/jobs/{id}` read its actions in order; the cascade of a
-- job's deletion (the pruner, `delete_queue`) finds them by it too.
CREATE INDEX hangar_job_actions_job ON hangar_job_actions (job_id, id);
