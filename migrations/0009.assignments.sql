-- Assignments: set against a unit, open from a date to a deadline, assessed against
-- Pass/Merit/Distinction criteria, by the assessors named on them.
-- depends: 0008.files
SET lock_timeout = '5s';

CREATE TABLE assignments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit_id    bigint NOT NULL REFERENCES units (id) ON DELETE RESTRICT,
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    brief      text NOT NULL CHECK (length(brief) BETWEEN 1 AND 20000),
    opens_at   timestamptz NOT NULL,
    deadline   timestamptz NOT NULL,
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (deadline > opens_at)
);

CREATE INDEX assignments_unit_deadline_idx ON assignments (unit_id, deadline, id);
CREATE INDEX assignments_deadline_idx ON assignments (deadline, id);

-- A criterion's code is its band and number: P1, M2, D1.
CREATE TABLE assignment_criteria (
    assignment_id bigint NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    band          text NOT NULL CHECK (band IN ('P', 'M', 'D')),
    number        smallint NOT NULL CHECK (number BETWEEN 1 AND 99),
    code          text GENERATED ALWAYS AS (band || number::text) STORED,
    description   text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
    PRIMARY KEY (assignment_id, band, number)
);

-- Who assesses an assignment: they see and grade its submissions.
CREATE TABLE assignment_assessors (
    assignment_id bigint NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    assessor_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (assignment_id, assessor_id)
);

CREATE INDEX assignment_assessors_assessor_idx ON assignment_assessors (assessor_id, assignment_id);
