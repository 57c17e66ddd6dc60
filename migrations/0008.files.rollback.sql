-- The files table goes with its rows; the stored files themselves stay on disk (or in the
-- bucket) until removed by hand: see runbooks/uploads.md.
SET lock_timeout = '5s';

DROP TABLE files;
