-- Outbound records waiting for their push (the sync engine, integrations crate): one row per
-- (integration, event) taken from the event catalog (invoice.created → a QuickBooks invoice),
-- pushed in order by the integration's outbound sync run; a push that met a stale
-- concurrency token points at its conflict.
CREATE TABLE hangar_sync_outbox (
    id             BIGSERIAL   PRIMARY KEY,
    integration_id TEXT        NOT NULL,
    workspace_id   TEXT        NOT NULL,
    data_type      TEXT        NOT NULL,
    object_type    TEXT        NOT NULL,
    internal_id    TEXT        NOT NULL,
    event_id       TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    data           JSONB       NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    pushed_at      TIMESTAMPTZ,
    run_id         TEXT,
    external_id    TEXT,
    conflict_id    TEXT,
    CONSTRAINT hangar_sync_outbox_once UNIQUE (integration_id, event_id)
);
CREATE INDEX hangar_sync_outbox_pending
    ON hangar_sync_outbox (integration_id, data_type, id) WHERE pushed_at IS NULL AND conflict_id IS NULL;
