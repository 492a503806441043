-- The rate budget becomes paced (GCRA) instead of a fixed window that opened at its first
-- call: a burst at a window's edge could double the rate that a provider counting a sliding
-- minute sees. `paced_until` is the budget's theoretical arrival time: the requests taken
-- so far are paid for up to that instant (at 95 % of the provider's rate), and a request may
-- go while it is at most the burst ahead of now. NULL: nothing owed. The window's columns go.
ALTER TABLE hangar_sync_rate_budgets ADD COLUMN paced_until TIMESTAMPTZ;
ALTER TABLE hangar_sync_rate_budgets DROP COLUMN window_started_at;
ALTER TABLE hangar_sync_rate_budgets DROP COLUMN window_used;
