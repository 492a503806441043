-- Event subscriptions (issue 11): a job to enqueue for every new event of a type in a
-- workspace, in the transaction that stores the event (beside the webhook fan-out). Kept in
-- step by their subscriber (e.g. an integration: one row per event type its enabled outbound
-- data types take). The job gets the row's args plus {"event_id"}, and the idempotency key
-- key_prefix || event id, so an event makes at most one job per row.

CREATE TABLE hangar_event_subscriptions (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber   text        NOT NULL,
    workspace_id text        NOT NULL,
    event_type   text        NOT NULL,
    kind         text        NOT NULL,
    queue        text        NOT NULL,
    max_attempts integer     NOT NULL,
    args         jsonb       NOT NULL,
    key_prefix   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT hangar_event_subscriptions_once UNIQUE (subscriber, event_type, key_prefix)
);

CREATE INDEX hangar_event_subscriptions_by_type
    ON hangar_event_subscriptions (workspace_id, event_type);
