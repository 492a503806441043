-- The idempotency index of 0006 with the key first and the workspace last: the same unique
-- rule per (workspace, kind, key), found by the same ON CONFLICT target (a conflict target
-- names an index's columns in any order) and usable by the same lookups, but each insert's
-- uniqueness check now tells keys apart at the second column instead of comparing the
-- workspace, which is the same for every job of a batch, and its COALESCE first. This was
-- most of the 10 % the Redis ingress lost between issue 8 and 9 (BENCHMARKS.md).
-- Numbered 9, a free number below the webhook tables' 11 and 12: it depends only on 0006.
DROP INDEX hangar_jobs_idempotency_key;
CREATE UNIQUE INDEX hangar_jobs_idempotency_key
    ON hangar_jobs (kind, idempotency_key, (COALESCE(workspace_id, '')))
    WHERE idempotency_key IS NOT NULL;
