// submit: students submitting with a file, on the data that btecctl/loadtest/seed.py wrote to
// SEED_FILE. Each iteration, a student (lib/assessment.js: no two VUs sign in as one student;
// VUS is the most VUs the run uses) uploads a text file of a few hundred words, then submits
// (or resubmits) an answer to an assignment with it; a 409 `submission_graded` is expected and
// the student tries another assignment. THINK_MS (default 0) between requests.
import exec from "k6/execution";
import { options as btecOptions } from "./lib/btec.js";
import { arrive, studentFor, submit, think } from "./lib/assessment.js";

export const options = btecOptions({ thresholds: { http_req_failed: ["rate==0"] } });
const vus = parseInt(__ENV.VUS || String(options.vus || 2));

export default function () {
  arrive();
  submit(studentFor(exec.vu.idInTest - 1, vus, exec.vu.iterationInScenario), true);
  think();
}
