-- A workspace's alerts, newest first, a page at a time (`GET /api/v1/alerts` with a workspace
-- token, `?before=<id>`): `WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT n`.
CREATE INDEX hangar_alerts_workspace ON hangar_alerts (workspace_id, id);
