-- An integration of one workspace with one provider, SQLite flavour: the same table and
-- columns as migrations/integrations/postgres/3001_integrations.sql (see there), with times as
-- integer Unix milliseconds and JSON as text.
CREATE TABLE hangar_integrations (
    id                   TEXT    PRIMARY KEY,
    workspace_id         TEXT    NOT NULL,
    provider             TEXT    NOT NULL,
    enabled              INTEGER NOT NULL,
    data_types           TEXT    NOT NULL DEFAULT '[]',
    frequency            TEXT    NOT NULL,
    settings             TEXT    NOT NULL DEFAULT '{}',
    status               TEXT    NOT NULL,
    status_reason        TEXT,
    auth                 TEXT,
    credential_sealed    TEXT,
    credential_key_id    TEXT,
    credential_version   INTEGER NOT NULL DEFAULT 0,
    credential_saved_at  INTEGER,
    access_expires_at    INTEGER,
    refresh_lease_until  INTEGER,
    refresh_lease_owner  TEXT,
    last_refreshed_at    INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    CONSTRAINT hangar_integrations_workspace_provider_key UNIQUE (workspace_id, provider),
    CONSTRAINT hangar_integrations_status_check
        CHECK (status IN ('active', 'disabled', 'needs_reauth')),
    CONSTRAINT hangar_integrations_auth_check CHECK (auth IN ('api_key', 'oauth'))
);
