-- Dashboard sign-ins (src/dashboard/session.rs): the cookie holds only a random session id;
-- this table keeps its SHA-256, the hash of the token it was opened with, the role and
-- workspace, and when it ends (sliding, twelve hours after the last request). Times are
-- integer Unix milliseconds.

CREATE TABLE hangar_dashboard_sessions (
    id_hash      TEXT    PRIMARY KEY,
    token_hash   TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    workspace_id TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

-- Serves the clean-up of ended sessions at each sign-in.
CREATE INDEX hangar_dashboard_sessions_expiry ON hangar_dashboard_sessions (expires_at);
