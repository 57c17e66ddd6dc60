// browse: students browsing, on the data that btecctl/loadtest/seed.py wrote to SEED_FILE.
// Each iteration, a student (lib/assessment.js: no two VUs sign in as one student; VUS is the
// most VUs the run uses) lists the unit catalogue, then a unit's assignments, one of them, and
// their own submissions, pausing THINK_MS (default 0) between requests.
import exec from "k6/execution";
import { options as btecOptions } from "./lib/btec.js";
import { arrive, browse, listUnits, studentFor, think } from "./lib/assessment.js";

export const options = btecOptions({ thresholds: { http_req_failed: ["rate==0"] } });
const vus = parseInt(__ENV.VUS || String(options.vus || 2));

export default function () {
  arrive();
  const student = studentFor(exec.vu.idInTest - 1, vus, exec.vu.iterationInScenario);
  listUnits(student);
  think();
  browse(student);
  think();
}
