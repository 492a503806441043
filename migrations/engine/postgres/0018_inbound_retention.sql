-- Inbound provider pushes are kept 30 days once processed (the webhook retention service
-- deletes them with the attempts, issue 10): the index it finds them by.
CREATE INDEX hangar_inbound_events_received ON hangar_inbound_events USING brin (received_at);
