// What every scenario shares: its k6 options, its tagged requests, and the count of problem
// answers by their code.
//
// Options: `btecctl perf run` passes the profile's executor and the thresholds as one JSON
// object in BTEC_K6_OPTIONS, which replaces the script's own; run bare (`k6 run
// perf/scenarios/NAME.js`), a scenario takes VUS (default 2) and DURATION (default 30s), a
// smoke run, and whatever thresholds the script sets for itself.
//
// Requests: every request carries a `name` tag, its request type, which btecctl reports on and
// judges thresholds by. An answer of 400 or more also counts once in `btec_problems`, tagged
// with its type, status and problem code (the `code` of btec's problem+json), so a report can
// say which problems the load met and not only how many.
import http from "k6/http";
import { Counter } from "k6/metrics";

export const BASE_URL = (__ENV.BASE_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const problems = new Counter("btec_problems");

export function options(own) {
  const bare = { vus: parseInt(__ENV.VUS || "2"), duration: __ENV.DURATION || "30s" };
  const given = __ENV.BTEC_K6_OPTIONS ? JSON.parse(__ENV.BTEC_K6_OPTIONS) : bare;
  return Object.assign(
    { summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"] },
    __ENV.BTEC_K6_OPTIONS ? {} : own || {},
    given,
  );
}

export function problemCode(res) {
  try {
    return JSON.parse(res.body).code;
  } catch (_) {
    return undefined;
  }
}

// One request of type `name`: k6's http.request with the tag set and the body kept as text
// (a problem's code is read from it).
export function request(method, path, name, body, params) {
  const p = Object.assign({ responseType: "text" }, params || {});
  p.tags = Object.assign({}, p.tags || {}, { name: name });
  const res = http.request(method, BASE_URL + path, body === undefined ? null : body, p);
  if (res.status >= 400) {
    problems.add(1, { name: name, status: String(res.status), code: problemCode(res) || "" });
  }
  return res;
}

export function get(path, name, params) {
  return request("GET", path, name, undefined, params);
}
