SET lock_timeout = '5s';

DROP TABLE similarity_flags;
DROP TABLE submission_files;
DROP TABLE submissions;
