-- Outbound webhooks (issue 10): a workspace's endpoints, their secrets, one delivery per
-- (event, endpoint) and every attempt of it. The event's compact body is stored once on the
-- event row (`body`) and sent byte for byte on every attempt of every delivery. Times are
-- integer Unix milliseconds; lists are JSON text.

ALTER TABLE hangar_events ADD COLUMN body TEXT;

CREATE TABLE hangar_webhook_endpoints (
    id                TEXT    PRIMARY KEY,
    workspace_id      TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    event_types       TEXT    NOT NULL DEFAULT '[]',
    description       TEXT    NOT NULL DEFAULT '',
    safety_allowed    INTEGER NOT NULL DEFAULT 0,
    enabled           INTEGER NOT NULL DEFAULT 1,
    paused_at         INTEGER,
    disabled_at       INTEGER,
    disabled_reason   TEXT,
    last_success_at   INTEGER,
    last_failure_at   INTEGER,
    failing_since     INTEGER,
    failure_streak    INTEGER NOT NULL DEFAULT 0,
    max_in_flight     INTEGER NOT NULL DEFAULT 10,
    rate_limit_per_s  INTEGER,
    ordering_key_path TEXT,
    circuit_state     TEXT    NOT NULL DEFAULT 'closed',
    circuit_opened_at INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE INDEX hangar_webhook_endpoints_ws ON hangar_webhook_endpoints (workspace_id);

CREATE TABLE hangar_webhook_secrets (
    endpoint_id  TEXT    NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    sealed       TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    PRIMARY KEY (endpoint_id, seq)
);

CREATE TABLE hangar_webhook_deliveries (
    id            TEXT    PRIMARY KEY,
    endpoint_id   TEXT    NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    workspace_id  TEXT    NOT NULL,
    event_row     INTEGER NOT NULL REFERENCES hangar_events (id) ON DELETE CASCADE,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    job_id        INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_status   INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    delivered_at  INTEGER,
    expunged_at   INTEGER,
    CONSTRAINT hangar_webhook_deliveries_once UNIQUE (event_row, endpoint_id)
);

CREATE INDEX hangar_webhook_deliveries_endpoint
    ON hangar_webhook_deliveries (endpoint_id, created_at);
CREATE INDEX hangar_webhook_deliveries_held
    ON hangar_webhook_deliveries (endpoint_id) WHERE state = 'held';

CREATE TABLE hangar_webhook_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT    NOT NULL REFERENCES hangar_webhook_deliveries (id) ON DELETE CASCADE,
    job_id           INTEGER,
    attempt          INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    address          TEXT,
    request_headers  TEXT    NOT NULL,
    status           INTEGER,
    response_headers TEXT,
    response_body    TEXT,
    body_truncated   INTEGER NOT NULL DEFAULT 0,
    body_size        INTEGER,
    total_ms         INTEGER NOT NULL,
    first_byte_ms    INTEGER,
    error_class      TEXT,
    error            TEXT
);

CREATE INDEX hangar_webhook_attempts_delivery ON hangar_webhook_attempts (delivery_id, id);
CREATE INDEX hangar_webhook_attempts_started ON hangar_webhook_attempts (started_at);
