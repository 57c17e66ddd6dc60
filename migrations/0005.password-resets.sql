-- Password resets: at most one live token per user, stored only as its SHA-256 digest, and
-- dead once the password changes (issued_version must still be the user's token_version).
-- depends: 0004.refresh-tokens
SET lock_timeout = '5s';

CREATE TABLE password_resets (
    user_id        bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash     bytea NOT NULL,
    issued_version integer NOT NULL,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX password_resets_hash_key ON password_resets (token_hash);
