-- Outbound webhooks (issue 10): a replay runs in the background (see the PostgreSQL twin).
-- Times are Unix milliseconds.

CREATE TABLE hangar_webhook_replays (
    id            TEXT    PRIMARY KEY,
    endpoint_id   TEXT    NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    workspace_id  TEXT    NOT NULL,
    since         INTEGER NOT NULL,
    until         INTEGER NOT NULL,
    failed_only   INTEGER NOT NULL,
    total         INTEGER NOT NULL,
    created       INTEGER NOT NULL DEFAULT 0,
    last_row      INTEGER NOT NULL DEFAULT 0,
    job_id        INTEGER,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);

CREATE INDEX hangar_webhook_replays_endpoint ON hangar_webhook_replays (endpoint_id, created_at);
