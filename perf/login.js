// Sign-in under load: VUS virtual users POST /api/v1/auth/login with EMAIL and PASSWORD for
// DURATION. Used by perf/login_bench.py.
import http from "k6/http";
import { check } from "k6";

const base = __ENV.BASE_URL || "http://127.0.0.1:8080";
const body = JSON.stringify({ email: __ENV.EMAIL, password: __ENV.PASSWORD });
const params = { headers: { "Content-Type": "application/json" } };

export const options = {
  vus: parseInt(__ENV.VUS || "50"),
  duration: __ENV.DURATION || "20s",
  discardResponseBodies: true,
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
  thresholds: { checks: ["rate>0.999"] },
};

export default function () {
  const res = http.post(base + "/api/v1/auth/login", body, params);
  check(res, { "signed in": (r) => r.status === 200 });
}
