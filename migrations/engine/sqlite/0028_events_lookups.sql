-- The events page (issue 15): a workspace's events newest first, optionally of one type
-- (`GET /api/v1/events?workspace_id=&type=`, newest first by row id, the cursor an id), and
-- "where an event went": the jobs its event subscriptions made (args `event_id`, keyed
-- `hangar:…<event id>`), found by workspace and event id instead of a scan of the jobs.

-- Store::events_page with a workspace (and no type).
CREATE INDEX hangar_events_workspace ON hangar_events (workspace_id, id);
-- Store::events_page with a workspace and a type.
CREATE INDEX hangar_events_workspace_type ON hangar_events (workspace_id, type, id);
-- Store::event_detail: the subscribed jobs of one event. Partial: only jobs whose args name
-- an event (subscription and inbound-push jobs), not the bulk of the table.
CREATE INDEX hangar_jobs_event ON hangar_jobs (workspace_id, json_extract(args, '$.event_id'))
    WHERE json_extract(args, '$.event_id') IS NOT NULL;
-- Store::event_details without a workspace (`hangar events show evt_…`, a token valid for
-- every workspace): an event id names one event per workspace.
CREATE INDEX hangar_events_event_id ON hangar_events (event_id);
