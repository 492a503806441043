-- The sync engine's tables (integrations crate, versions 3500-3999). An integration is named
-- by its id (TEXT, no foreign key: the integrations table is another migration's).

-- One row per sync run: the audit trail of MISSION §8.
CREATE TABLE hangar_sync_runs (
    id                 TEXT        PRIMARY KEY,
    integration_id     TEXT        NOT NULL,
    workspace_id       TEXT        NOT NULL,
    provider           TEXT        NOT NULL,
    data_type          TEXT        NOT NULL,
    direction          TEXT        NOT NULL CHECK (direction IN ('in', 'out')),
    trigger            TEXT        NOT NULL CHECK (trigger IN ('schedule', 'manual', 'event', 'webhook')),
    status             TEXT        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'rate_limited')),
    job_id             BIGINT,
    started_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ,
    credential_version BIGINT,
    cursor_before      JSONB,
    cursor_after       JSONB,
    records_read       BIGINT      NOT NULL DEFAULT 0,
    records_created    BIGINT      NOT NULL DEFAULT 0,
    records_updated    BIGINT      NOT NULL DEFAULT 0,
    records_removed    BIGINT      NOT NULL DEFAULT 0,
    records_conflicted BIGINT      NOT NULL DEFAULT 0,
    records_skipped    BIGINT      NOT NULL DEFAULT 0,
    provider_calls     BIGINT      NOT NULL DEFAULT 0,
    rate_wait_ms       BIGINT      NOT NULL DEFAULT 0,
    error_class        TEXT,
    error              TEXT,
    log                JSONB       NOT NULL DEFAULT '[]'
);
CREATE INDEX hangar_sync_runs_workspace ON hangar_sync_runs (workspace_id, started_at DESC, id DESC);
CREATE INDEX hangar_sync_runs_integration ON hangar_sync_runs (integration_id, data_type, started_at DESC);

-- Where the next inbound read starts, per (integration, data type): the last applied
-- record's (modified time, external id), and the position of a full reconciliation under way.
CREATE TABLE hangar_sync_cursors (
    integration_id TEXT        NOT NULL,
    data_type      TEXT        NOT NULL,
    cursor_at      TIMESTAMPTZ,
    cursor_id      TEXT,
    scan_position  TEXT,
    scan_started_at TIMESTAMPTZ,
    scan_run_id    TEXT,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (integration_id, data_type)
);

-- External id <-> internal id per (integration, object type), with the last applied payload
-- and its hash (an unchanged re-read is skipped), and the platform's side ("ours").
CREATE TABLE hangar_sync_mappings (
    integration_id       TEXT        NOT NULL,
    object_type          TEXT        NOT NULL,
    external_id          TEXT        NOT NULL,
    internal_id          TEXT,
    applied_hash         TEXT        NOT NULL,
    payload              JSONB       NOT NULL,
    provider_modified_at TIMESTAMPTZ,
    concurrency_token    TEXT,
    ours                 JSONB,
    ours_modified_at     TIMESTAMPTZ,
    last_synced_at       TIMESTAMPTZ NOT NULL,
    seen_scan            TEXT,
    removed_at           TIMESTAMPTZ,
    PRIMARY KEY (integration_id, object_type, external_id)
);
CREATE UNIQUE INDEX hangar_sync_mappings_internal
    ON hangar_sync_mappings (integration_id, object_type, internal_id) WHERE internal_id IS NOT NULL;

-- Every applied change, in order: what goes to {prefix}:changes after commit and what
-- GET .../sync-runs/{id}/changes returns.
CREATE TABLE hangar_sync_changes (
    id           BIGSERIAL   PRIMARY KEY,
    run_id       TEXT        NOT NULL,
    workspace_id TEXT        NOT NULL,
    provider     TEXT        NOT NULL,
    object_type  TEXT        NOT NULL,
    external_id  TEXT        NOT NULL,
    internal_id  TEXT,
    action       TEXT        NOT NULL CHECK (action IN ('created', 'updated', 'appended', 'conflict', 'removed')),
    record       JSONB       NOT NULL,
    changed_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX hangar_sync_changes_run ON hangar_sync_changes (run_id, id);
CREATE INDEX hangar_sync_changes_unpublished ON hangar_sync_changes (id) WHERE published_at IS NULL;

-- Financial records changed on both sides (or a stale concurrency token): not applied, kept
-- for an admin to take ours or theirs.
CREATE TABLE hangar_sync_conflicts (
    id             TEXT        PRIMARY KEY,
    integration_id TEXT        NOT NULL,
    workspace_id   TEXT        NOT NULL,
    provider       TEXT        NOT NULL,
    data_type      TEXT        NOT NULL,
    run_id         TEXT        NOT NULL,
    object_type    TEXT        NOT NULL,
    external_id    TEXT        NOT NULL,
    internal_id    TEXT,
    reason         TEXT        NOT NULL CHECK (reason IN ('changed_on_both_sides', 'stale_concurrency_token', 'removed_at_source')),
    ours           JSONB,
    theirs         JSONB       NOT NULL,
    theirs_hash    TEXT        NOT NULL,
    theirs_token   TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    resolved_at    TIMESTAMPTZ,
    resolution     TEXT        CHECK (resolution IN ('ours', 'theirs')),
    resolved_by    TEXT
);
CREATE UNIQUE INDEX hangar_sync_conflicts_open
    ON hangar_sync_conflicts (integration_id, object_type, external_id) WHERE resolved_at IS NULL;
CREATE INDEX hangar_sync_conflicts_workspace ON hangar_sync_conflicts (workspace_id, created_at DESC, id DESC);

-- A provider account's request budget (QuickBooks: per realm), shared by every job and
-- process: requests in the current minute, calls in flight, and a provider-imposed pause.
CREATE TABLE hangar_sync_rate_budgets (
    account          TEXT        PRIMARY KEY,
    window_started_at TIMESTAMPTZ NOT NULL,
    window_used      BIGINT      NOT NULL DEFAULT 0,
    in_flight        BIGINT      NOT NULL DEFAULT 0,
    last_call_at     TIMESTAMPTZ,
    blocked_until    TIMESTAMPTZ
);
