SET lock_timeout = '5s';

DROP TABLE assignment_assessors;
DROP TABLE assignment_criteria;
DROP TABLE assignments;
