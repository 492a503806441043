-- Platform events handed over by the main application (Redis ingress or POST /api/v1/events),
-- stored once per (workspace_id, event_id): a repeat of the same event is a no-op. The webhook
-- fan-out reads from here.

CREATE TABLE hangar_events (
    id           bigserial   PRIMARY KEY,
    workspace_id text        NOT NULL,
    event_id     text        NOT NULL,
    type         text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    data         jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT hangar_events_once UNIQUE (workspace_id, event_id)
);

CREATE INDEX hangar_events_received ON hangar_events USING brin (received_at);
