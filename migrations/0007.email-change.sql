-- Email change: a verification token may carry a new address for its user, which becomes the
-- account's address when the link is confirmed.
-- depends: 0006.email-verifications
SET lock_timeout = '5s';

ALTER TABLE email_verifications ADD COLUMN new_address boolean NOT NULL DEFAULT false;
