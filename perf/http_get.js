// One GET endpoint under constant load: BASE_URL + TARGET_PATH, VUS virtual users, DURATION.
// Used by perf/compare_live.py and perf/health_p99.py; thresholds fail the run when missed.
// AUTHORIZATION, when set, is sent as the Authorization header.
import http from "k6/http";
import { check } from "k6";

const base = __ENV.BASE_URL || "http://127.0.0.1:8080";
const path = __ENV.TARGET_PATH || "/api/v1/health/live";
const expected = parseInt(__ENV.EXPECT_STATUS || "200");

export const options = {
  vus: parseInt(__ENV.VUS || "32"),
  duration: __ENV.DURATION || "15s",
  discardResponseBodies: true,
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
  thresholds: {
    checks: ["rate>0.999"],
    ...(__ENV.P99_MS ? { http_req_duration: [`p(99)<${__ENV.P99_MS}`] } : {}),
  },
};

const params = __ENV.AUTHORIZATION ? { headers: { Authorization: __ENV.AUTHORIZATION } } : {};

export default function () {
  const res = http.get(base + path, params);
  check(res, { "status as expected": (r) => r.status === expected });
}
