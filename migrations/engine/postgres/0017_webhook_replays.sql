-- Outbound webhooks (issue 10): a replay runs in the background. `POST …/replay` stores one
-- row with the count it answered (`total`) and enqueues the internal job `webhook_replay`,
-- which sends the range again in batches, each batch in one transaction with its progress
-- (`created`, `last_row`: the last event row done), so a retried job resumes where it stopped.

CREATE TABLE hangar_webhook_replays (
    id            text        PRIMARY KEY,              -- rpl_…
    endpoint_id   text        NOT NULL REFERENCES hangar_webhook_endpoints (id) ON DELETE CASCADE,
    workspace_id  text        NOT NULL,
    since         timestamptz NOT NULL,
    until         timestamptz NOT NULL,
    failed_only   boolean     NOT NULL,
    total         bigint      NOT NULL,                 -- counted when it was asked
    created       bigint      NOT NULL DEFAULT 0,       -- deliveries sent again so far
    last_row      bigint      NOT NULL DEFAULT 0,       -- the last event row done
    job_id        bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

CREATE INDEX hangar_webhook_replays_endpoint ON hangar_webhook_replays (endpoint_id, created_at);
