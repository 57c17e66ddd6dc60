-- Email verification: one live token per user, bound to the address it was sent to, stored
-- only as its SHA-256 digest.
-- depends: 0005.password-resets
SET lock_timeout = '5s';

CREATE TABLE email_verifications (
    user_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email      text NOT NULL,
    token_hash bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX email_verifications_hash_key ON email_verifications (token_hash);
