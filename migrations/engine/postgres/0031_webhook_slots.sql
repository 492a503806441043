-- Outbound webhooks (issue 10): the endpoints' delivery slots become a fixed set of numbered
-- rows per endpoint, updated in place when a delivery takes or frees one, instead of a row
-- inserted and deleted per request. No indexed column changes on take or release, so the
-- updates stay on the row's page (HOT) and the indexes do not grow: the insert-and-delete
-- table left a dead index entry per delivery until the next vacuum, which every count of the
-- gate walked (15 ms a batch within 15 s of a drain). Slots held at the upgrade are carried
-- over. Rows are made by the gate on first use (0 to max_in_flight - 1); fillfactor leaves
-- each page room for the updated versions.

CREATE TABLE hangar_webhook_slots (
    endpoint_id  text        NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    slot         integer     NOT NULL,
    workspace_id text        NOT NULL,
    delivery_id  text,                   -- NULL: free
    retry        boolean     NOT NULL DEFAULT false,
    probe        boolean     NOT NULL DEFAULT false,
    expires_at   timestamptz,            -- held until then at the latest (its holder died)
    PRIMARY KEY (endpoint_id, slot)
) WITH (fillfactor = 50);

CREATE INDEX hangar_webhook_slots_workspace ON hangar_webhook_slots (workspace_id);

INSERT INTO hangar_webhook_slots (endpoint_id, slot, workspace_id, delivery_id, retry, probe,
                                  expires_at)
SELECT i.endpoint_id,
       (row_number() OVER (PARTITION BY i.endpoint_id ORDER BY i.delivery_id) - 1)::integer,
       i.workspace_id, i.delivery_id, i.retry, i.probe, i.expires_at
FROM hangar_webhook_inflight i
JOIN hangar_webhook_endpoints ep ON ep.id = i.endpoint_id;

DROP TABLE hangar_webhook_inflight;

-- An endpoint whose deliveries were put back to wait for its limits since its waiters were
-- last all woken: a release looks for waiters to wake only then (most releases have none,
-- and that search's plan depends on the deliveries' statistics). Endpoints with deliveries
-- waiting at the upgrade start flagged.
ALTER TABLE hangar_webhook_endpoints ADD COLUMN waiters_since timestamptz;

UPDATE hangar_webhook_endpoints SET waiters_since = now()
WHERE id IN (SELECT endpoint_id FROM hangar_webhook_deliveries WHERE waiting IS NOT NULL);
