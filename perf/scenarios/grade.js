// grade: assessors grading, on the data that btecctl/loadtest/seed.py wrote to SEED_FILE. Each
// VU is one of the seeded assessors in turn: it lists the ungraded submissions of one of its
// assignments, reads one and grades it with every criterion marked (lib/assessment.js), or,
// once none is left ungraded, changes a grade given before; pausing THINK_MS (default 0)
// between requests.
import exec from "k6/execution";
import { options as btecOptions } from "./lib/btec.js";
import { arrive, assessors, grade, think } from "./lib/assessment.js";

export const options = btecOptions({ thresholds: { http_req_failed: ["rate==0"] } });

export default function () {
  arrive();
  grade(assessors[(exec.vu.idInTest - 1) % assessors.length], true);
  think();
}
