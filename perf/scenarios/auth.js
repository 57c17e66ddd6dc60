// auth: signing in, refreshing and signing out, on the accounts that btecctl/loadtest/seed.py
// made (SEED_FILE: {"accounts": [{"email"}...], "password"}). VU i signs in as account i (in
// turn when there are fewer), trades its refresh token for a new pair, and signs out with it,
// pausing THINK_MS (default 0) between requests. The server hashes passwords at their real
// argon2id cost, so each sign-in is one verification: what this scenario measures.
import exec from "k6/execution";
import { SharedArray } from "k6/data";
import { sleep } from "k6";
import { options as btecOptions, request } from "./lib/btec.js";

const seedFile = __ENV.SEED_FILE || "auth_seed.json";
const accounts = new SharedArray("accounts", () => JSON.parse(open(seedFile)).accounts);
const password = JSON.parse(open(seedFile)).password;
const thinkMs = parseFloat(__ENV.THINK_MS || "0");
const json = { headers: { "Content-Type": "application/json" } };

export const options = btecOptions({ thresholds: { http_req_failed: ["rate==0"] } });

function think() {
  if (thinkMs > 0) sleep((thinkMs * (0.5 + Math.random())) / 1000);
}

export default function () {
  const me = accounts[(exec.vu.idInTest - 1) % accounts.length];
  const login = request("POST", "/api/v1/auth/login", "login",
    JSON.stringify({ email: me.email, password: password }), json);
  if (login.status !== 200) return;
  think();
  const refreshed = request("POST", "/api/v1/auth/refresh", "refresh",
    JSON.stringify({ refresh_token: JSON.parse(login.body).refresh_token }), json);
  if (refreshed.status !== 200) return;
  const session = JSON.parse(refreshed.body);
  think();
  request("POST", "/api/v1/auth/logout", "logout",
    JSON.stringify({ refresh_token: session.refresh_token }),
    { headers: { Authorization: `Bearer ${session.access_token}`,
      "Content-Type": "application/json" } });
  think();
}
