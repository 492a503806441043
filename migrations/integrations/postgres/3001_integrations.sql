-- An integration of one workspace with one provider (hangar-integrations, versions 3001-3499;
-- the sync engine's tables are 3500-3999). What an admin chose (enabled, data types,
-- frequency, settings) and the credential, sealed with the master key.
--
-- credential_sealed: `hk1:<key id>:<base64(nonce || ciphertext)>` of the credential's JSON
-- ({"api_key"} or {"oauth": {...}}), sealed with the row id as associated data, so a
-- ciphertext copied to another row does not open; credential_key_id repeats the key id for
-- `hangar keys rotate`. Never returned, never logged.
--
-- credential_version fences the token refresh: new tokens are saved with
-- `WHERE credential_version = $read` and the version bumped, so a refresher that lost the race
-- writes nothing. refresh_lease_until / refresh_lease_owner make the refresh single-flight:
-- taken under the row lock (FOR UPDATE) in a short transaction, so the token endpoint is
-- called with no lock held.
CREATE TABLE hangar_integrations (
    id                   TEXT        PRIMARY KEY,
    workspace_id         TEXT        NOT NULL,
    provider             TEXT        NOT NULL,
    enabled              BOOLEAN     NOT NULL,
    data_types           JSONB       NOT NULL DEFAULT '[]',
    frequency            TEXT        NOT NULL,
    settings             JSONB       NOT NULL DEFAULT '{}',
    status               TEXT        NOT NULL,
    status_reason        TEXT,
    auth                 TEXT,
    credential_sealed    TEXT,
    credential_key_id    TEXT,
    credential_version   BIGINT      NOT NULL DEFAULT 0,
    credential_saved_at  TIMESTAMPTZ,
    access_expires_at    TIMESTAMPTZ,
    refresh_lease_until  TIMESTAMPTZ,
    refresh_lease_owner  TEXT,
    last_refreshed_at    TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT hangar_integrations_workspace_provider_key UNIQUE (workspace_id, provider),
    CONSTRAINT hangar_integrations_status_check
        CHECK (status IN ('active', 'disabled', 'needs_reauth')),
    CONSTRAINT hangar_integrations_auth_check CHECK (auth IN ('api_key', 'oauth'))
);
-- A workspace's integrations (`GET …/integrations`) read the unique index above.
