-- Outbound webhooks, second slice (issue 10): per-endpoint limits counted in the database so
-- every worker process shares them. A delivery holds a slot in hangar_webhook_inflight while
-- its request is out (an expired slot, of a process that died, is taken back); the rate limit
-- is a GCRA over the endpoint's `rate_next_at`; the circuit opens until `circuit_open_until`.
-- A delivery that waits for a limit names it in `waiting` (its job is scheduled, no attempt
-- used), so a released slot can wake the next one.

ALTER TABLE hangar_webhook_endpoints ADD COLUMN rate_next_at timestamptz;
ALTER TABLE hangar_webhook_endpoints ADD COLUMN circuit_open_until timestamptz;

ALTER TABLE hangar_webhook_deliveries ADD COLUMN waiting text;

CREATE INDEX hangar_webhook_deliveries_waiting
    ON hangar_webhook_deliveries (endpoint_id, event_row) WHERE waiting IS NOT NULL;
CREATE INDEX hangar_webhook_deliveries_open
    ON hangar_webhook_deliveries (endpoint_id, event_row) WHERE state IN ('pending', 'held');

CREATE TABLE hangar_webhook_inflight (
    delivery_id  text        PRIMARY KEY,
    endpoint_id  text        NOT NULL,
    workspace_id text        NOT NULL,
    retry        boolean     NOT NULL,   -- a retry (the retry lane's share of the slots)
    probe        boolean     NOT NULL,   -- the one probe of a half-open circuit
    expires_at   timestamptz NOT NULL
);

CREATE INDEX hangar_webhook_inflight_endpoint ON hangar_webhook_inflight (endpoint_id);
CREATE INDEX hangar_webhook_inflight_workspace ON hangar_webhook_inflight (workspace_id);
