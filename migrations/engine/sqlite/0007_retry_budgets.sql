-- Retry budgets per error class: the same columns as migrations/postgres/0007_retry_budgets.sql
-- (see there for why).

ALTER TABLE hangar_jobs ADD COLUMN budget_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_jobs ADD COLUMN timeout_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_jobs ADD COLUMN server_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_jobs ADD COLUMN internal_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_jobs ADD COLUMN auth_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hangar_jobs ADD COLUMN budget_from_attempt INTEGER NOT NULL DEFAULT 0;

ALTER TABLE hangar_job_attempts ADD COLUMN budget_failure INTEGER;
ALTER TABLE hangar_job_attempts ADD COLUMN class_failure INTEGER;

-- Jobs that will still run get their counts from the attempts they already had.
UPDATE hangar_jobs SET
    budget_failures = (SELECT count(*) FROM hangar_job_attempts a
                       WHERE a.job_id = hangar_jobs.id AND a.error_class <> 'rate_limit'),
    timeout_failures = (SELECT count(*) FROM hangar_job_attempts a
                        WHERE a.job_id = hangar_jobs.id AND a.error_class = 'timeout'),
    server_failures = (SELECT count(*) FROM hangar_job_attempts a
                       WHERE a.job_id = hangar_jobs.id AND a.error_class = 'server'),
    internal_failures = (SELECT count(*) FROM hangar_job_attempts a
                         WHERE a.job_id = hangar_jobs.id AND a.error_class = 'internal'),
    auth_failures = (SELECT count(*) FROM hangar_job_attempts a
                     WHERE a.job_id = hangar_jobs.id AND a.error_class = 'auth')
WHERE state IN ('available', 'scheduled', 'running', 'retryable');
