-- Inbound provider webhooks (issue 10): per (workspace, provider) the verification material
-- (sealed with the keyring, the row named in the associated data), and every verified push
-- with its raw body and headers, deduplicated per (workspace, provider, provider event id).

CREATE TABLE hangar_inbound_hooks (
    workspace_id text        NOT NULL,
    provider     text        NOT NULL,
    -- intuit | stripe | basic | planeconnection: how a push of this provider is verified
    scheme       text        NOT NULL,
    sealed       text        NOT NULL,                      -- hk1:… of the material's JSON
    key_id       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, provider)
);

CREATE TABLE hangar_inbound_events (
    id           bigserial   PRIMARY KEY,
    workspace_id text        NOT NULL,
    provider     text        NOT NULL,
    event_id     text        NOT NULL,                      -- the provider's id of the push
    -- What makes a push a duplicate: the event id; for a safety event the id and the body's
    -- SHA-256, so a second report under the same id is kept beside the first (append-only).
    dedup_key    text        NOT NULL,
    event_type   text,                                      -- the provider's type, as sent
    safety       boolean     NOT NULL DEFAULT false,
    body         text        NOT NULL,                      -- the raw body, byte for byte
    headers      jsonb       NOT NULL,                      -- minus credentials and signatures
    received_at  timestamptz NOT NULL DEFAULT now(),
    job_id       bigint,                                    -- the inbound_event job
    -- received (its job has not finished), processed (see outcome)
    state        text        NOT NULL DEFAULT 'received',
    outcome      text,
    processed_at timestamptz,
    CONSTRAINT hangar_inbound_events_once UNIQUE (workspace_id, provider, dedup_key)
);

-- A workspace's inbound events, newest first (the API and dashboard listing).
CREATE INDEX hangar_inbound_events_ws ON hangar_inbound_events (workspace_id, id DESC);
