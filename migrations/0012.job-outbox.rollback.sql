SET lock_timeout = '5s';

DROP TABLE job_outbox;
