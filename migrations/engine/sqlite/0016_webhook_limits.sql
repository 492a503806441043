-- Outbound webhooks, second slice (issue 10): per-endpoint limits counted in the database so
-- every worker process shares them (see the PostgreSQL twin). Times are Unix milliseconds.

ALTER TABLE hangar_webhook_endpoints ADD COLUMN rate_next_at INTEGER;
ALTER TABLE hangar_webhook_endpoints ADD COLUMN circuit_open_until INTEGER;

ALTER TABLE hangar_webhook_deliveries ADD COLUMN waiting TEXT;

CREATE INDEX hangar_webhook_deliveries_waiting
    ON hangar_webhook_deliveries (endpoint_id, event_row) WHERE waiting IS NOT NULL;
CREATE INDEX hangar_webhook_deliveries_open
    ON hangar_webhook_deliveries (endpoint_id, event_row) WHERE state IN ('pending', 'held');

CREATE TABLE hangar_webhook_inflight (
    delivery_id  TEXT    PRIMARY KEY,
    endpoint_id  TEXT    NOT NULL,
    workspace_id TEXT    NOT NULL,
    retry        INTEGER NOT NULL,
    probe        INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

CREATE INDEX hangar_webhook_inflight_endpoint ON hangar_webhook_inflight (endpoint_id);
CREATE INDEX hangar_webhook_inflight_workspace ON hangar_webhook_inflight (workspace_id);
