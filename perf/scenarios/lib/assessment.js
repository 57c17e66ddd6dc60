// The assessment workload's pieces, shared by the browse, grade and mixed scenarios: the data
// that btecctl/loadtest/seed.py wrote to SEED_FILE (an absolute path), and what a student or an
// assessor does with it.
//
// Students: VU j (counted among the student VUs) signs in as students j, j + n, j + 2n... (n
// student VUs) in turn, so no two VUs submit as one student. Assessors list the ungraded
// submissions of one of their assignments, read one and grade it with every criterion marked.
// A 409 `submission_graded` on a submission is expected (the work was graded meanwhile): it
// counts in `submission_graded` and the student tries another assignment. Any other unexpected
// answer counts in `unexpected_responses`.
//
// THINK_MS (default 0): a pause of that mean between a VU's requests; a VU's first request
// comes after a random pause of up to twice that, so that users arrive spread out.
import exec from "k6/execution";
import { check, sleep } from "k6";
import { SharedArray } from "k6/data";
import { Counter } from "k6/metrics";
import http from "k6/http";
import { get, problemCode, request } from "./btec.js";

const seedFile = __ENV.SEED_FILE || "assessment_seed.json";
export const units = new SharedArray("units", () => JSON.parse(open(seedFile)).units);
export const assignments = new SharedArray("assignments",
  () => JSON.parse(open(seedFile)).assignments);
export const students = new SharedArray("students", () => JSON.parse(open(seedFile)).students);
export const assessors = new SharedArray("assessors", () => JSON.parse(open(seedFile)).assessors);
const criteriaOf = {};
for (const a of assignments) criteriaOf[a.id] = a.criteria;

const thinkMs = parseFloat(__ENV.THINK_MS || "0");
const graded409 = new Counter("submission_graded");
const unexpected = new Counter("unexpected_responses");

const WORDS = ("the program uses classes to model each part of the system and encapsulation " +
  "keeps their state private while methods expose behaviour other objects rely on inheritance " +
  "lets a subclass reuse and extend the design polymorphism means one interface serves many " +
  "forms testing shows the code meets the requirements evaluation compares the chosen " +
  "approach with alternatives such as procedural design data structures include lists " +
  "dictionaries and queues algorithms sort and search efficiently the network layer sends " +
  "packets between hosts security controls protect confidentiality integrity and " +
  "availability a database stores records in tables linked by keys the report explains " +
  "analyses and justifies each decision with evidence from the project log").split(" ");

export function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function essay() {
  const words = 250 + Math.floor(Math.random() * 150);
  const out = [];
  for (let i = 0; i < words; i++) out.push(i % 60 === 59 ? pick(WORDS) + ".\n\n" : pick(WORDS));
  return out.join(" ");
}

export function think() {
  if (thinkMs > 0) sleep((thinkMs * (0.5 + Math.random())) / 1000);
}

// Users arrive over a think time, not all in the same millisecond: without this, every VU's
// first request lands at once and the run measures that one burst's queue.
export function arrive() {
  if (thinkMs > 0 && exec.vu.iterationInScenario === 0) {
    sleep((Math.random() * 2 * thinkMs) / 1000);
  }
}

function auth(token, extra) {
  return Object.assign(
    { headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" } },
    extra || {},
  );
}

function expect(res, statuses, what) {
  const ok = check(res, { [what]: (r) => statuses.includes(r.status) });
  if (!ok) unexpected.add(1, { name: what });
  return ok;
}

// The student of student VU `j` (0-based among `n` student VUs) at its `iteration`.
export function studentFor(j, n, iteration) {
  const mine = Math.max(1, Math.ceil((students.length - j) / n));
  const index = j < students.length ? j + n * (iteration % mine) : j % students.length;
  return students[index];
}

export function listUnits(student) {
  expect(get("/api/v1/units?limit=20", "list_units", auth(student.token)), [200], "list_units");
}

export function browse(student) {
  const unit = pick(units);
  const list = get(`/api/v1/assignments?unit=${unit.id}&limit=20`, "list_assignments",
    auth(student.token));
  if (!expect(list, [200], "list_assignments")) return;
  const items = JSON.parse(list.body).items;
  think();
  const id = items.length ? pick(items).id : pick(unit.assignment_ids);
  expect(get(`/api/v1/assignments/${id}`, "get_assignment", auth(student.token)),
    [200], "get_assignment");
  think();
  expect(get("/api/v1/submissions?limit=20", "my_submissions", auth(student.token)),
    [200], "my_submissions");
}

// A text file of the student's own (a few hundred words), uploaded: its id, or null.
export function upload(student) {
  const file = http.file(essay(), "answer.txt", "text/plain");
  const res = request("POST", "/api/v1/files", "upload", { file: file },
    { headers: { Authorization: `Bearer ${student.token}` } });
  return expect(res, [201], "upload") ? JSON.parse(res.body).id : null;
}

// `withFile`: upload a file first and submit it with the answer.
export function submit(student, withFile) {
  const fileIds = [];
  if (withFile) {
    const id = upload(student);
    if (id === null) return;
    fileIds.push(id);
    think();
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const assignment = pick(assignments);
    const body = JSON.stringify({ answer: essay(), file_ids: fileIds });
    const res = request("PUT", `/api/v1/assignments/${assignment.id}/submission`, "submit", body,
      auth(student.token, { responseCallback: http.expectedStatuses(200, 201, 409) }));
    if (res.status === 409 && problemCode(res) === "submission_graded") {
      graded409.add(1);
      continue;  // graded meanwhile: as a student would, try another assignment
    }
    expect(res, [200, 201], "submit");
    return;
  }
}

function listed(assessor, assignmentId, graded) {
  const list = get(`/api/v1/submissions?assignment=${assignmentId}&graded=${graded}&limit=20`,
    "assessor_submissions", auth(assessor.token));
  return expect(list, [200], "assessor_submissions") ? JSON.parse(list.body).items : null;
}

// `regrade`: when an assignment has nothing left to grade, change a grade given before (as
// after a second marking) instead of moving on, so that a long run keeps grading.
export function grade(assessor, regrade) {
  if (!assessor.assignment_ids.length) return;  // named on none (more assessors than seats)
  const assignmentId = pick(assessor.assignment_ids);
  let items = listed(assessor, assignmentId, false);
  if (items && !items.length && regrade) items = listed(assessor, assignmentId, true);
  if (!items || !items.length) return;  // nothing to grade here: next time, another assignment
  const submission = pick(items);
  think();
  expect(get(`/api/v1/submissions/${submission.id}`, "get_submission", auth(assessor.token)),
    [200], "get_submission");
  think();
  const marks = {};
  for (const code of criteriaOf[assignmentId]) {
    marks[code] = Math.random() < { P: 0.85, M: 0.6, D: 0.4 }[code[0]];
  }
  const body = JSON.stringify({ assignment_id: assignmentId, criteria: marks,
    feedback: "Clear structure; the evaluation needs evidence from testing." });
  expect(request("PUT", `/api/v1/submissions/${submission.id}/grade`, "grade", body,
    auth(assessor.token)), [200], "grade");
}
