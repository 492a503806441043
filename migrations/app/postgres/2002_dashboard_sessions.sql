-- Dashboard sign-ins (src/dashboard/session.rs). The browser's cookie holds only a random
-- session id; this table keeps the SHA-256 of that id, the token it was opened with (by hash,
-- so revoking the token ends the session), the role and workspace, and when it ends: twelve
-- hours after the last request (sliding). Signing out deletes the row.

CREATE TABLE hangar_dashboard_sessions (
    id_hash      text        PRIMARY KEY,
    token_hash   text        NOT NULL,
    role         text        NOT NULL,
    workspace_id text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Serves the clean-up of ended sessions at each sign-in (DELETE … WHERE expires_at < now()).
CREATE INDEX hangar_dashboard_sessions_expiry ON hangar_dashboard_sessions (expires_at);
