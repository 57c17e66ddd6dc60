// The assessment mix (issue "BTEC domain"): VUS virtual users for DURATION on the data that
// perf/seed_assessment.py wrote to SEED_FILE (an absolute path). Used by perf/mixed_bench.py.
//
// The first ASSESSOR_VUS VUs (default a tenth, at least 1) are assessors: list the ungraded
// submissions of one of their assignments, read one, grade it with every criterion marked.
// The others are students, each VU with its own students in turn (no two VUs submit as one
// student): SUBMIT_SHARE of their iterations (default 0.3) submit or resubmit a few hundred
// words to an assignment; the rest browse (a unit's assignments, one of them, their own
// submissions). A 409 `submission_graded` is expected (the work was graded meanwhile): it is
// counted in `submission_graded` and the student tries another assignment. Any other
// unexpected answer counts in `unexpected_responses`.
//
// Requests are tagged by type (`name`), so the summary gives the count, p50 and p99 of each
// type; the p99 < P99_MS (default 100) thresholds are reported figures. THINK_MS (default
// 0): a pause of that mean between a VU's requests (and a VU's first request comes after a
// random pause of up to twice that, so that users arrive spread out).
import http from "k6/http";
import exec from "k6/execution";
import { check, sleep } from "k6";
import { SharedArray } from "k6/data";
import { Counter } from "k6/metrics";

const base = __ENV.BASE_URL || "http://127.0.0.1:8080";
const seedFile = __ENV.SEED_FILE || "assessment_seed.json";
const vus = parseInt(__ENV.VUS || "50");
const assessorVus = Math.min(
  vus - 1,
  parseInt(__ENV.ASSESSOR_VUS || String(Math.max(1, Math.round(vus / 10)))),
);
const submitShare = parseFloat(__ENV.SUBMIT_SHARE || "0.3");
const thinkMs = parseFloat(__ENV.THINK_MS || "0");
const p99 = __ENV.P99_MS || "100";
const TYPES = ["list_assignments", "get_assignment", "my_submissions", "submit",
  "assessor_submissions", "get_submission", "grade"];

const units = new SharedArray("units", () => JSON.parse(open(seedFile)).units);
const assignments = new SharedArray("assignments", () => JSON.parse(open(seedFile)).assignments);
const students = new SharedArray("students", () => JSON.parse(open(seedFile)).students);
const assessors = new SharedArray("assessors", () => JSON.parse(open(seedFile)).assessors);
const criteriaOf = {};
for (const a of assignments) criteriaOf[a.id] = a.criteria;

const graded409 = new Counter("submission_graded");
const unexpected = new Counter("unexpected_responses");

export const options = {
  vus: vus,
  duration: __ENV.DURATION || "30s",
  discardResponseBodies: true,
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
  thresholds: {
    http_req_failed: ["rate==0"],
    unexpected_responses: ["count==0"],
    http_req_duration: [`p(99)<${p99}`],
    ...Object.fromEntries(TYPES.map((t) => [`http_req_duration{name:${t}}`, [`p(99)<${p99}`]])),
    // Always met: there so the summary carries each type's count (the mix as it ran).
    ...Object.fromEntries(TYPES.map((t) => [`http_reqs{name:${t}}`, ["count>=0"]])),
  },
};

const WORDS = ("the program uses classes to model each part of the system and encapsulation " +
  "keeps their state private while methods expose behaviour other objects rely on inheritance " +
  "lets a subclass reuse and extend the design polymorphism means one interface serves many " +
  "forms testing shows the code meets the requirements evaluation compares the chosen " +
  "approach with alternatives such as procedural design data structures include lists " +
  "dictionaries and queues algorithms sort and search efficiently the network layer sends " +
  "packets between hosts security controls protect confidentiality integrity and " +
  "availability a database stores records in tables linked by keys the report explains " +
  "analyses and justifies each decision with evidence from the project log").split(" ");

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function essay() {
  const words = 250 + Math.floor(Math.random() * 150);
  const out = [];
  for (let i = 0; i < words; i++) out.push(i % 60 === 59 ? pick(WORDS) + ".\n\n" : pick(WORDS));
  return out.join(" ");
}

function think() {
  if (thinkMs > 0) sleep((thinkMs * (0.5 + Math.random())) / 1000);
}

function params(token, name, extra) {
  return Object.assign(
    { headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      tags: { name: name } },
    extra || {},
  );
}

function expect(res, statuses, what) {
  const ok = check(res, { [what]: (r) => statuses.includes(r.status) });
  if (!ok) unexpected.add(1, { name: what });
  return ok;
}

function problemCode(res) {
  try {
    return JSON.parse(res.body).code;
  } catch (_) {
    return undefined;
  }
}

// Student VU j (0-based) signs in as students j, j + n, j + 2n... (n student VUs) in turn.
function studentFor(vu, iteration) {
  const n = vus - assessorVus;
  const j = vu - assessorVus - 1;
  const mine = Math.max(1, Math.ceil((students.length - j) / n));
  const index = j < students.length ? j + n * (iteration % mine) : j % students.length;
  return students[index];
}

function browse(student) {
  const unit = pick(units);
  const list = http.get(`${base}/api/v1/assignments?unit=${unit.id}&limit=20`,
    params(student.token, "list_assignments", { responseType: "text" }));
  if (!expect(list, [200], "list_assignments")) return;
  const items = JSON.parse(list.body).items;
  think();
  const id = items.length ? pick(items).id : pick(unit.assignment_ids);
  expect(http.get(`${base}/api/v1/assignments/${id}`, params(student.token, "get_assignment")),
    [200], "get_assignment");
  think();
  expect(http.get(`${base}/api/v1/submissions?limit=20`, params(student.token, "my_submissions")),
    [200], "my_submissions");
}

function submit(student) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const assignment = pick(assignments);
    const body = JSON.stringify({ answer: essay(), file_ids: [] });
    const res = http.put(`${base}/api/v1/assignments/${assignment.id}/submission`, body,
      params(student.token, "submit", {
        responseType: "text",
        responseCallback: http.expectedStatuses(200, 201, 409),
      }));
    if (res.status === 409 && problemCode(res) === "submission_graded") {
      graded409.add(1);
      continue;  // graded meanwhile: as a student would, try another assignment
    }
    expect(res, [200, 201], "submit");
    return;
  }
}

function grade(assessor) {
  if (!assessor.assignment_ids.length) return;  // named on none (more assessors than seats)
  const assignmentId = pick(assessor.assignment_ids);
  const url = `${base}/api/v1/submissions?assignment=${assignmentId}&graded=false&limit=20`;
  const list = http.get(url, params(assessor.token, "assessor_submissions", { responseType: "text" }));
  if (!expect(list, [200], "assessor_submissions")) return;
  const items = JSON.parse(list.body).items;
  if (!items.length) return;  // nothing left to grade here: next iteration, another assignment
  const submission = pick(items);
  think();
  expect(http.get(`${base}/api/v1/submissions/${submission.id}`,
    params(assessor.token, "get_submission")), [200], "get_submission");
  think();
  const marks = {};
  for (const code of criteriaOf[assignmentId]) {
    marks[code] = Math.random() < { P: 0.85, M: 0.6, D: 0.4 }[code[0]];
  }
  const body = JSON.stringify({ assignment_id: assignmentId, criteria: marks,
    feedback: "Clear structure; the evaluation needs evidence from testing." });
  expect(http.put(`${base}/api/v1/submissions/${submission.id}/grade`, body,
    params(assessor.token, "grade")), [200], "grade");
}

export default function () {
  const vu = exec.vu.idInTest;
  if (thinkMs > 0 && exec.vu.iterationInScenario === 0) {
    // Users arrive over a think time, not all in the same millisecond: without this, every
    // VU's first request lands at once and the run measures that one burst's queue.
    sleep((Math.random() * 2 * thinkMs) / 1000);
  }
  if (vu <= assessorVus) {
    grade(assessors[(vu - 1) % assessors.length]);
  } else {
    const student = studentFor(vu, exec.vu.iterationInScenario);
    if (Math.random() < submitShare) submit(student);
    else browse(student);
  }
  think();
}
