// health: probes as a load balancer sends them. Each VU is one balancer: GET
// /api/v1/health/live (the process answers), then /api/v1/health/ready (PostgreSQL and Redis
// reachable, migrations at head; cached for BTEC_HEALTH_CACHE_SECONDS), anonymous, then waits
// THINK_MS (default 0: back to back). Both must answer 200.
import { sleep } from "k6";
import { get, options as btecOptions } from "./lib/btec.js";

export const options = btecOptions({
  thresholds: { http_req_failed: ["rate==0"] },
});

const thinkMs = parseFloat(__ENV.THINK_MS || "0");
const probe = { headers: { "User-Agent": "btec-perf-probe" } };

export default function () {
  get("/api/v1/health/live", "live", probe);
  get("/api/v1/health/ready", "ready", probe);
  if (thinkMs > 0) sleep(thinkMs / 1000);
}
