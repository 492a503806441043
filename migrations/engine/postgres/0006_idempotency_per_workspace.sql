-- Idempotency keys are unique per (workspace, kind, key), no longer per (kind, key): with the
-- old index one workspace could take a key another workspace would use (the planner's
-- predictable `schedule:<name>:<slot>` among them) and be answered with the other's job.
-- NULLs never conflict in a unique index, so a job without a workspace is keyed under '':
-- the jobs without a workspace form one scope of their own, the same on both backends.
-- Inserts name this index in ON CONFLICT ((COALESCE(workspace_id, '')), kind, idempotency_key).
DROP INDEX hangar_jobs_idempotency_key;
CREATE UNIQUE INDEX hangar_jobs_idempotency_key
    ON hangar_jobs ((COALESCE(workspace_id, '')), kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
