-- Pending address changes are dropped with the column (their links stop working); plain
-- verification tokens are kept.
SET lock_timeout = '5s';

DELETE FROM email_verifications WHERE new_address;
ALTER TABLE email_verifications DROP COLUMN new_address;
