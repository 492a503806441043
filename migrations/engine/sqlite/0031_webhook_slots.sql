-- Outbound webhooks (issue 10): the endpoints' delivery slots become a fixed set of numbered
-- rows per endpoint, updated in place (see the PostgreSQL twin for why). Times are Unix
-- milliseconds. Slots held at the upgrade are carried over.

CREATE TABLE hangar_webhook_slots (
    endpoint_id  TEXT    NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    slot         INTEGER NOT NULL,
    workspace_id TEXT    NOT NULL,
    delivery_id  TEXT,
    retry        INTEGER NOT NULL DEFAULT 0,
    probe        INTEGER NOT NULL DEFAULT 0,
    expires_at   INTEGER,
    PRIMARY KEY (endpoint_id, slot)
);

CREATE INDEX hangar_webhook_slots_workspace ON hangar_webhook_slots (workspace_id);

INSERT INTO hangar_webhook_slots (endpoint_id, slot, workspace_id, delivery_id, retry, probe,
                                  expires_at)
SELECT i.endpoint_id,
       row_number() OVER (PARTITION BY i.endpoint_id ORDER BY i.delivery_id) - 1,
       i.workspace_id, i.delivery_id, i.retry, i.probe, i.expires_at
FROM hangar_webhook_inflight i
JOIN hangar_webhook_endpoints ep ON ep.id = i.endpoint_id;

DROP TABLE hangar_webhook_inflight;

-- An endpoint whose deliveries were put back to wait for its limits since its waiters were
-- last all woken: a release looks for waiters to wake only then (most releases have none,
-- and that search's plan depends on the deliveries' statistics). Endpoints with deliveries
-- waiting at the upgrade start flagged.
ALTER TABLE hangar_webhook_endpoints ADD COLUMN waiters_since INTEGER;

UPDATE hangar_webhook_endpoints SET waiters_since = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
WHERE id IN (SELECT endpoint_id FROM hangar_webhook_deliveries WHERE waiting IS NOT NULL);
