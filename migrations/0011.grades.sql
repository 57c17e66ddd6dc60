-- Grades: an assessor's marks on each criterion of a submission's assignment, the overall
-- grade the BTEC rule gives for them, and feedback. `version` counts changes.
-- depends: 0010.submissions
SET lock_timeout = '5s';

CREATE TABLE grades (
    submission_id bigint PRIMARY KEY REFERENCES submissions (id) ON DELETE CASCADE,
    assessor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    criteria      jsonb NOT NULL,
    overall       text NOT NULL CHECK (overall IN ('D', 'M', 'P', 'U')),
    feedback      text NOT NULL DEFAULT '' CHECK (length(feedback) <= 20000),
    version       integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    graded_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
