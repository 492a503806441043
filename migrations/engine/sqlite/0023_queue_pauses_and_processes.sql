-- Paused queues: one row per paused queue. A paused queue keeps accepting jobs; the claim
-- and the producer's next-run lookup (store/claims.rs) skip it. Times are Unix milliseconds.
CREATE TABLE hangar_queue_pauses (
    queue     TEXT    PRIMARY KEY,
    paused_at INTEGER NOT NULL,
    paused_by TEXT
);

-- The processes that run pools (`serve`, `worker`), one row each, heartbeated by the process
-- and deleted when it stops cleanly; `id` is its `host:pid`, the `leased_by` of the jobs it
-- runs. `pools` is a JSON array of pool names.
CREATE TABLE hangar_processes (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    command      TEXT    NOT NULL,
    pools        TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

-- The workers page lists by heartbeat, newest first; the heartbeat deletes rows gone a day.
CREATE INDEX hangar_processes_heartbeat ON hangar_processes (heartbeat_at);
