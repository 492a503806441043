-- Inbound provider pushes are kept 30 days once processed (see the PostgreSQL twin).
CREATE INDEX hangar_inbound_events_received ON hangar_inbound_events (received_at);
