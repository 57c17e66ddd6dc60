-- Accounts: who may sign in, their role, and what revokes their tokens.
-- depends: 0002.units
SET lock_timeout = '5s';

CREATE TABLE users (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email             text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    full_name         text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    role              text NOT NULL CHECK (role IN ('admin', 'assessor', 'student')),
    is_active         boolean NOT NULL DEFAULT true,
    email_verified_at timestamptz,
    token_version     integer NOT NULL DEFAULT 0,
    password_hash     text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_role_idx ON users (role, id);
