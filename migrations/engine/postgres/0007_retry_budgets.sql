-- Retry budgets per error class (issue 8, items 8 and 10; issue 13, item 4). The retry rules
-- give each class its own budget (timeouts: 3 retries, server errors: alert at the 3rd, auth:
-- one refresh), so the job row counts each class's failures instead of comparing one total
-- with every class's limit. The counts cover the current budget only: an operator's retry
-- starts a fresh one (the counters, `snoozes` included, go back to 0 and `budget_from_attempt`
-- remembers where it began).

ALTER TABLE hangar_jobs
    ADD COLUMN budget_failures     INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN timeout_failures    INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN server_failures     INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN internal_failures   INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN auth_failures       INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN budget_from_attempt INTEGER NOT NULL DEFAULT 0;

-- Each failed attempt records where it stood: its number among the budget-consuming failures
-- of the current budget (NULL for a rate-limit snooze, which uses none) and among the
-- failures of its own class (for a snooze: the snooze's number).
ALTER TABLE hangar_job_attempts
    ADD COLUMN budget_failure INTEGER,
    ADD COLUMN class_failure  INTEGER;

-- Jobs that will still run get their counts from the attempts they already had; finished
-- jobs keep zeros (an operator's retry gives them a fresh budget anyway).
UPDATE hangar_jobs j SET
    budget_failures = c.budget, timeout_failures = c.timeout, server_failures = c.server,
    internal_failures = c.internal, auth_failures = c.auth
FROM (
    SELECT job_id,
           count(*) FILTER (WHERE error_class <> 'rate_limit') AS budget,
           count(*) FILTER (WHERE error_class = 'timeout')     AS timeout,
           count(*) FILTER (WHERE error_class = 'server')      AS server,
           count(*) FILTER (WHERE error_class = 'internal')    AS internal,
           count(*) FILTER (WHERE error_class = 'auth')        AS auth
    FROM hangar_job_attempts
    WHERE error_class IS NOT NULL
    GROUP BY job_id
) c
WHERE j.id = c.job_id AND j.state IN ('available', 'scheduled', 'running', 'retryable');
