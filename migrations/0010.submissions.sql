-- Submissions: a student's answer and files for an assignment, one per student and
-- assignment (a resubmission replaces it and is counted), flagged late after the deadline.
-- depends: 0009.assignments
SET lock_timeout = '5s';

CREATE TABLE submissions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    assignment_id bigint NOT NULL REFERENCES assignments (id) ON DELETE RESTRICT,
    student_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    answer        text NOT NULL CHECK (length(answer) <= 200000),
    submitted_at  timestamptz NOT NULL DEFAULT now(),
    late          boolean NOT NULL,
    resubmissions integer NOT NULL DEFAULT 0 CHECK (resubmissions >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (assignment_id, student_id)
);

CREATE INDEX submissions_student_idx ON submissions (student_id, submitted_at DESC);

-- Uploaded files given as evidence; a linked file cannot be deleted.
CREATE TABLE submission_files (
    submission_id bigint NOT NULL REFERENCES submissions (id) ON DELETE CASCADE,
    file_id       uuid NOT NULL REFERENCES files (id) ON DELETE RESTRICT,
    position      smallint NOT NULL CHECK (position BETWEEN 0 AND 99),
    PRIMARY KEY (submission_id, file_id)
);

CREATE INDEX submission_files_file_idx ON submission_files (file_id);

-- Pairs of submissions to one assignment whose answers are alike (the similarity job).
CREATE TABLE similarity_flags (
    submission_id bigint NOT NULL REFERENCES submissions (id) ON DELETE CASCADE,
    other_id      bigint NOT NULL REFERENCES submissions (id) ON DELETE CASCADE,
    score         real NOT NULL CHECK (score >= 0 AND score <= 1),
    checked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (submission_id, other_id),
    CHECK (submission_id < other_id)
);

CREATE INDEX similarity_flags_other_idx ON similarity_flags (other_id);
