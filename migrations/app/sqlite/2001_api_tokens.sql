-- API tokens (`hangar tokens create`): only a SHA-256 of each token is stored. Times are
-- integer Unix milliseconds.

CREATE TABLE hangar_api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    workspace_id TEXT,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    CONSTRAINT hangar_api_tokens_role_check
        CHECK (role IN ('owner', 'admin', 'safety_manager', 'operator', 'viewer'))
);
