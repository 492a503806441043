-- Outbound webhooks (issue 10): a workspace's endpoints, their secrets, one delivery per
-- (event, endpoint) and every attempt of it. The event's compact body is stored once on the
-- event row (`body`) and sent byte for byte on every attempt of every delivery.

ALTER TABLE hangar_events ADD COLUMN body text;

CREATE TABLE hangar_webhook_endpoints (
    id                text        PRIMARY KEY,              -- ep_…
    workspace_id      text        NOT NULL,
    url               text        NOT NULL,
    event_types       text[]      NOT NULL DEFAULT '{}',    -- empty = every type
    description       text        NOT NULL DEFAULT '',
    -- Whether the creator could subscribe to safety events (an "all" filter gets them only then).
    safety_allowed    boolean     NOT NULL DEFAULT false,
    enabled           boolean     NOT NULL DEFAULT true,
    paused_at         timestamptz,                          -- paused by an operator
    disabled_at       timestamptz,
    disabled_reason   text,
    last_success_at   timestamptz,
    last_failure_at   timestamptz,
    failing_since     timestamptz,                          -- first failure after the last success
    failure_streak    integer     NOT NULL DEFAULT 0,
    -- Room for the next slice: per-endpoint limits, circuit breaker, ordering.
    max_in_flight     integer     NOT NULL DEFAULT 10,
    rate_limit_per_s  integer,
    ordering_key_path text,
    circuit_state     text        NOT NULL DEFAULT 'closed',
    circuit_opened_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX hangar_webhook_endpoints_ws ON hangar_webhook_endpoints (workspace_id);

-- Secrets: the current one (expires_at NULL) and those rotated out, which sign beside it until
-- they expire. Sealed with the keyring, the endpoint id and seq bound as associated data.
CREATE TABLE hangar_webhook_secrets (
    endpoint_id  text        NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    seq          integer     NOT NULL,
    sealed       text        NOT NULL,
    key_id       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    PRIMARY KEY (endpoint_id, seq)
);

CREATE TABLE hangar_webhook_deliveries (
    id            text        PRIMARY KEY,                  -- dlv_…, X-PlaneConnection-Delivery-ID
    endpoint_id   text        NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    workspace_id  text        NOT NULL,
    event_row     bigint      NOT NULL REFERENCES hangar_events (id) ON DELETE CASCADE,
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    -- pending (a job will send it), held (endpoint paused or disabled: no job), succeeded,
    -- failed (given up: 410, a client error or the retries spent)
    state         text        NOT NULL,
    job_id        bigint,
    attempts      integer     NOT NULL DEFAULT 0,
    last_status   integer,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    expunged_at   timestamptz,
    CONSTRAINT hangar_webhook_deliveries_once UNIQUE (event_row, endpoint_id)
);

CREATE INDEX hangar_webhook_deliveries_endpoint
    ON hangar_webhook_deliveries (endpoint_id, created_at);
CREATE INDEX hangar_webhook_deliveries_held
    ON hangar_webhook_deliveries (endpoint_id) WHERE state = 'held';

CREATE TABLE hangar_webhook_attempts (
    id               bigserial   PRIMARY KEY,
    delivery_id      text        NOT NULL REFERENCES hangar_webhook_deliveries (id) ON DELETE CASCADE,
    job_id           bigint,
    attempt          integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    address          text,
    request_headers  text        NOT NULL,                  -- JSON object, signatures redacted
    status           integer,
    response_headers text,                                  -- JSON object
    response_body    text,                                  -- first 16 KiB
    body_truncated   boolean     NOT NULL DEFAULT false,
    body_size        bigint,
    total_ms         integer     NOT NULL,
    first_byte_ms    integer,
    error_class      text,
    error            text
);

CREATE INDEX hangar_webhook_attempts_delivery ON hangar_webhook_attempts (delivery_id, id);
CREATE INDEX hangar_webhook_attempts_started ON hangar_webhook_attempts USING brin (started_at);
