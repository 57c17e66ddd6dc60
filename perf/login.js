// Sign-in under load: VUS virtual users, each its own account (perf<VU>@example.org, made by
// perf/login_bench.py), POST /api/v1/auth/login with PASSWORD for DURATION.
import http from "k6/http";
import { check } from "k6";

const base = __ENV.BASE_URL || "http://127.0.0.1:8080";
const params = { headers: { "Content-Type": "application/json" } };

export const options = {
  vus: parseInt(__ENV.VUS || "50"),
  duration: __ENV.DURATION || "20s",
  discardResponseBodies: true,
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
  thresholds: { checks: ["rate>0.999"] },
};

export default function () {
  const body = JSON.stringify({ email: `perf${__VU}@example.org`, password: __ENV.PASSWORD });
  const res = http.post(base + "/api/v1/auth/login", body, params);
  check(res, { "signed in": (r) => r.status === 200 });
}
