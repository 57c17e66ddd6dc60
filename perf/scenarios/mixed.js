// mixed: the assessment mix (issue "BTEC domain") on the data that btecctl/loadtest/seed.py
// wrote to SEED_FILE (an absolute path). Used by `btecctl perf run mixed` and by
// perf/mixed_bench.py.
//
// The first ASSESSOR_VUS VUs (default a tenth of VUS, at least 1) are assessors grading; the
// others are students: SUBMIT_SHARE of their iterations (default 0.3) submit or resubmit a few
// hundred words to an assignment, the rest browse (a unit's assignments, one of them, their own
// submissions). See lib/assessment.js for who signs in as whom and what counts as unexpected.
//
// Requests are tagged by type (`name`). Run bare, the thresholds are: no failed request, no
// unexpected answer and p99 < P99_MS (default 100) overall and per request type; the always-met
// count thresholds make k6's summary carry each type's count (the mix as it ran).
import exec from "k6/execution";
import { options as btecOptions } from "./lib/btec.js";
import { arrive, assessors, browse, grade, studentFor, submit, think } from "./lib/assessment.js";

const vus = parseInt(__ENV.VUS || "50");
const assessorVus = Math.min(
  vus - 1,
  parseInt(__ENV.ASSESSOR_VUS || String(Math.max(1, Math.round(vus / 10)))),
);
const submitShare = parseFloat(__ENV.SUBMIT_SHARE || "0.3");
const p99 = __ENV.P99_MS || "100";
const TYPES = ["list_assignments", "get_assignment", "my_submissions", "submit",
  "assessor_submissions", "get_submission", "grade"];

export const options = btecOptions({
  vus: vus,
  duration: __ENV.DURATION || "30s",
  thresholds: {
    http_req_failed: ["rate==0"],
    unexpected_responses: ["count==0"],
    http_req_duration: [`p(99)<${p99}`],
    ...Object.fromEntries(TYPES.map((t) => [`http_req_duration{name:${t}}`, [`p(99)<${p99}`]])),
    ...Object.fromEntries(TYPES.map((t) => [`http_reqs{name:${t}}`, ["count>=0"]])),
  },
});

export default function () {
  const vu = exec.vu.idInTest;
  arrive();
  if (vu <= assessorVus) {
    grade(assessors[(vu - 1) % assessors.length]);
  } else {
    const student = studentFor(vu - assessorVus - 1, vus - assessorVus,
      exec.vu.iterationInScenario);
    if (Math.random() < submitShare) submit(student);
    else browse(student);
  }
  think();
}
