// The dashboard's shell: sign-in, the views by URL hash, polling, the confirmation dialog.
// Every datum comes from /v1 (and /metrics, /readyz) with the signed-in token.
import { api, token } from "./api.js";
import { mappings } from "./config.js";
import { ageTimes, h, note } from "./fmt.js";
import { job } from "./job.js";
import { jobs } from "./jobs.js";
import { overview } from "./overview.js";

const POLL_MS = 5000;
const $ = (id) => document.getElementById(id);
const ctx = { canWrite: false, confirm };
let current = null, timer = null, busy = false;

function confirm(text) {
  const d = $("confirm");
  $("confirm-text").textContent = text;
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true }));
}

function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "jobs" && parts[1]) return ["jobs", () => job(decodeURIComponent(parts[1]), ctx)];
  if (parts[0] === "jobs") return ["jobs", () => jobs(params, ctx)];
  if (parts[0] === "mappings") return ["mappings", () => mappings()];
  return ["overview", () => overview()];
}

async function tick() {
  if (!current || busy || document.hidden) return;
  busy = true;
  try {
    await current.refresh();
    ageTimes();
  } finally {
    busy = false;
  }
}

function show() {
  clearInterval(timer);
  const [name, make] = route();
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
  current = make();
  $("view").replaceChildren(current.root);
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · jobbridge`;
  busy = false;
  tick();
  timer = setInterval(tick, POLL_MS);
}

function signedIn(who) {
  ctx.canWrite = who.scopes.includes("write");
  $("who-name").textContent = `${who.name || "anonymous"} · ${who.scopes.join(", ") || "no scopes"}`;
  $("signin").hidden = true;
  $("nav").hidden = $("who").hidden = false;
  $("sign-out").hidden = !token.get();
  show();
}

function signIn(message) {
  clearInterval(timer);
  current = null;
  $("view").replaceChildren();
  $("nav").hidden = $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("token").focus();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  $("signin-error").textContent = "";
  try {
    const who = await api("/v1/whoami", { tok: t });
    token.set(t);
    $("token").value = "";
    signedIn(who);
  } catch (e) {
    $("signin-error").textContent = e.status === 401
      ? "This token is not valid: check it for a typo, or ask for one listed in http.tokens."
      : e.status === 403 ? "This token has no read scope: the dashboard needs at least read."
        : `Cannot sign in: ${e.message}`;
  }
});

$("sign-out").addEventListener("click", () => {
  token.clear();
  signIn("Signed out.");
});

window.addEventListener("hashchange", () => { if (current) show(); });
document.addEventListener("visibilitychange", tick);

// A token kept in this tab: go straight in. Without one, the sign-in form (asking the API
// without a token first would log a refused request in the browser's console).
(async () => {
  if (!token.get()) {
    signIn("");
    return;
  }
  try {
    signedIn(await api("/v1/whoami"));
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      token.clear();
      signIn("Your token is no longer accepted: sign in again.");
    } else {
      $("view").replaceChildren(note("error", "jobbridge does not answer.", `${e.message} Reload the page once it runs.`));
    }
  }
})();
