// btec's own pages for the links it mails, when no front end is configured: each page reads
// the token from its URL, and its one form POSTs it (and a new password) to the API as JSON.
// What the API answers is shown as it says it: a problem's `detail` and each field error.
"use strict";

const ENDPOINTS = {
  "verify-email": "/api/v1/auth/verify/confirm",
  "confirm-email-change": "/api/v1/auth/verify/confirm",
  "reset-password": "/api/v1/auth/password/reset",
};

function show(text, ok) {
  const outcome = document.getElementById("outcome");
  outcome.textContent = text;
  outcome.className = ok ? "ok" : "problem";
}

function listProblems(errors) {
  // The API's field errors: a list of {pointer or parameter, detail} (RFC 9457).
  const list = document.getElementById("problems");
  for (const error of Array.isArray(errors) ? errors : []) {
    const item = document.createElement("li");
    const where = (error.pointer || error.parameter || "").replace(/^#\//, "");
    item.textContent = (where ? where + ": " : "") + error.detail;
    list.appendChild(item);
  }
}

async function submit(event) {
  event.preventDefault();
  const page = document.body.dataset.page;
  const form = event.target;
  const token = new URLSearchParams(window.location.search).get("token") || "";
  const body = { token: token };
  document.getElementById("problems").replaceChildren();
  if (page === "reset-password") {
    if (form.password.value !== form.again.value) {
      show("The two passwords differ.", false);
      return;
    }
    body.password = form.password.value;
  }
  form.querySelector("button").disabled = true;
  try {
    const answer = await fetch(ENDPOINTS[page], {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    });
    const said = await answer.json().catch(() => ({}));
    if (answer.ok) {
      show(form.dataset.done, true);
      form.hidden = true;
    } else {
      show(said.detail || said.title || ("The request failed (" + answer.status + ")."), false);
      listProblems(said.errors);
      form.querySelector("button").disabled = false;
    }
  } catch (error) {
    show("The server could not be reached; try again.", false);
    form.querySelector("button").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("form");
  if (!new URLSearchParams(window.location.search).get("token")) {
    show("This link has no token: open the link from the message again.", false);
    form.hidden = true;
    return;
  }
  form.addEventListener("submit", submit);
});
