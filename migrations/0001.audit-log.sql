-- The audit log: who did what to which record, kept for operators and assessors' appeals.
SET lock_timeout = '5s';

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text,
    action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target      text,
    request_id  text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);
