-- The outbox of follow-up jobs (a scan after an upload, a similarity check after a submission,
-- the notice of a grade): written in the transaction of the change they follow, put on the
-- queue once it commits, and kept here until the queue takes them (server/jobs/outbox.py).
-- depends: 0011.grades
SET lock_timeout = '5s';

CREATE TABLE job_outbox (
    job_key    text PRIMARY KEY CHECK (length(job_key) <= 200),
    task       text NOT NULL CHECK (length(task) <= 100),
    kwargs     jsonb NOT NULL,
    about      jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts   integer NOT NULL DEFAULT 0,
    last_error text
);
