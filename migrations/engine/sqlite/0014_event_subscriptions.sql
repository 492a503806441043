-- Event subscriptions (issue 11): a job to enqueue for every new event of a type in a
-- workspace, in the transaction that stores the event (beside the webhook fan-out). Kept in
-- step by their subscriber (e.g. an integration: one row per event type its enabled outbound
-- data types take). The job gets the row's args plus {"event_id"}, and the idempotency key
-- key_prefix || event id, so an event makes at most one job per row.

CREATE TABLE hangar_event_subscriptions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber   TEXT    NOT NULL,
    workspace_id TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    max_attempts INTEGER NOT NULL,
    args         TEXT    NOT NULL,
    key_prefix   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    CONSTRAINT hangar_event_subscriptions_once UNIQUE (subscriber, event_type, key_prefix)
);

CREATE INDEX hangar_event_subscriptions_by_type
    ON hangar_event_subscriptions (workspace_id, event_type);
