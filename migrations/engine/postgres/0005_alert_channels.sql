-- Alert channels: where alerts are delivered (Slack incoming webhook, email over SMTP, a
-- signed generic webhook). The channel's configuration holds secrets, so it is stored sealed
-- (ChaCha20-Poly1305 under the master key, `hk1:<key id>:…`, the row id as associated data);
-- `summary` is the part that is safe to show (a host, never a URL with its token).
-- Times are Unix milliseconds, the same on both backends.
CREATE TABLE hangar_alert_channels (
    id                TEXT    PRIMARY KEY,
    workspace_id      TEXT,              -- NULL: every workspace (the operator's channel)
    kind              TEXT    NOT NULL CONSTRAINT hangar_alert_channels_kind
                              CHECK (kind IN ('slack', 'email', 'webhook')),
    summary           TEXT    NOT NULL,
    config_sealed     TEXT    NOT NULL,
    min_severity      TEXT    NOT NULL DEFAULT 'warning',
    reminder_every_ms BIGINT,            -- NULL: no reminders
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason   TEXT,
    created_at        BIGINT  NOT NULL
);

-- What was sent for which alert on which channel: one row per (alert, channel, event), where
-- event is `opened`, `reminder:<n>` or `resolved`. Inserted with the delivery job in one
-- transaction; the primary key makes several dispatchers send each notice once.
CREATE TABLE hangar_alert_notices (
    alert_id   BIGINT NOT NULL,
    channel_id TEXT   NOT NULL,
    event      TEXT   NOT NULL,
    job_id     BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (alert_id, channel_id, event)
);
