-- Inbound provider webhooks (issue 10): per (workspace, provider) the verification material
-- (sealed with the keyring, the row named in the associated data), and every verified push
-- with its raw body and headers, deduplicated per (workspace, provider, provider event id).
-- Times are integer Unix milliseconds; headers are JSON text.

CREATE TABLE hangar_inbound_hooks (
    workspace_id TEXT    NOT NULL,
    provider     TEXT    NOT NULL,
    scheme       TEXT    NOT NULL,
    sealed       TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, provider)
);

CREATE TABLE hangar_inbound_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT    NOT NULL,
    provider     TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    dedup_key    TEXT    NOT NULL,
    event_type   TEXT,
    safety       INTEGER NOT NULL DEFAULT 0,
    body         TEXT    NOT NULL,
    headers      TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    job_id       INTEGER,
    state        TEXT    NOT NULL DEFAULT 'received',
    outcome      TEXT,
    processed_at INTEGER,
    CONSTRAINT hangar_inbound_events_once UNIQUE (workspace_id, provider, dedup_key)
);

CREATE INDEX hangar_inbound_events_ws ON hangar_inbound_events (workspace_id, id DESC);
