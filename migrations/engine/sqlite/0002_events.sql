-- Platform events handed over by the main application (Redis ingress or POST /api/v1/events),
-- stored once per (workspace_id, event_id). Times are integer Unix milliseconds.

CREATE TABLE hangar_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    occurred_at  INTEGER NOT NULL,
    data         TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    CONSTRAINT hangar_events_once UNIQUE (workspace_id, event_id)
);

CREATE INDEX hangar_events_received ON hangar_events (received_at);
