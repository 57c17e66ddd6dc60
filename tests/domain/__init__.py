"""Rules with no I/O (server/domain): grading, file names."""
