-- API tokens (`hangar tokens create`): only a SHA-256 of each token is stored; the token is
-- shown once, when it is created. A token without a workspace is valid for every workspace.

CREATE TABLE hangar_api_tokens (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL,
    role         text        NOT NULL,
    workspace_id text,
    token_hash   text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CONSTRAINT hangar_api_tokens_role_check
        CHECK (role IN ('owner', 'admin', 'safety_manager', 'operator', 'viewer'))
);
