-- The unit catalogue: the BTEC units a college runs, each with its level and credit value.
-- depends: 0001.audit-log
SET lock_timeout = '5s';

CREATE TABLE units (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code       text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9/._-]{0,31}$'),
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    level      smallint NOT NULL CHECK (level BETWEEN 1 AND 8),
    credits    smallint NOT NULL CHECK (credits BETWEEN 1 AND 999),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX units_code_key ON units (lower(code));
CREATE INDEX units_level_code_idx ON units (level, code);
