// DataVisa's live dashboard (console.js adds the requester's and approver's views): reads the /v1 API as the person signed in with the
// organisation's identity provider (the server's session cookie; state-changing calls carry
// the session's CSRF token), or with a pasted bearer token, and refreshes itself whenever
// GET /v1/events (server-sent events) says the data moved. No build step, no dependencies;
// every value is put on the page as text, never as HTML. The server decides everything:
// a denial is shown as the policy said it.
"use strict";

const KEY = "datavisa.token";
const RETRY_MS = 2000;
const state = {
  token: null, csrf: null, signIn: false, heads: null, skew: 0, busy: false, again: false, stream: null,
  seen: new Set(), shown: false, // rows on the page before, and whether anything was shown yet
  stepUp: new Map(), // the step-up denials of this page, by request
};

const $ = (sel) => document.querySelector(sel);

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// -- time ------------------------------------------------------------------------------

const now = () => Date.now() + state.skew; // the server's clock, as the last event told it

function duration(ms) {
  let s = Math.max(0, Math.round(ms / 1000));
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    const n = Math.floor(s / size);
    s -= n * size;
    if (n) parts.push(n + unit);
  }
  return parts.slice(0, 2).join("") || "0s";
}

function countdown(iso, label) {
  return h("span", { class: "left", "data-until": iso, "data-label": label }, "");
}

function since(iso) {
  return h("span", { class: "ago", "data-since": iso }, "");
}

function tick() {
  for (const el of document.querySelectorAll("[data-until]")) {
    const left = Date.parse(el.dataset.until) - now();
    el.textContent = left > 0 ? `${el.dataset.label} ${duration(left)}` : "due now";
    el.classList.toggle("soon", left < 5 * 60 * 1000);
  }
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = `${duration(now() - Date.parse(el.dataset.since))} ago`;
  }
}

// -- the API ---------------------------------------------------------------------------

// The caller's credential: the bearer token, else the session cookie the browser sends
// itself, with the session's CSRF token on every call that changes something.
function credentials(method) {
  if (state.token) return { Authorization: `Bearer ${state.token}` };
  return method && method !== "GET" && state.csrf ? { "X-CSRF-Token": state.csrf } : {};
}

const ENDED = () => (state.token ? "That token is unknown or revoked." : "Your session ended: sign in again.");

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    cache: "no-store",
    credentials: "same-origin",
    headers: { ...credentials(options.method), ...(options.headers || {}) },
  });
  if (response.status === 401 && signedIn()) signOut(ENDED()); // once, for all calls in flight
  const body = await response.json().catch(() => null);
  if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status, body });
  return body;
}

async function listen() {
  while (signedIn()) {
    try {
      state.stream = new AbortController();
      const response = await fetch("/v1/events", {
        signal: state.stream.signal,
        cache: "no-store",
        credentials: "same-origin",
        headers: { ...credentials("GET"), Accept: "text/event-stream" },
      });
      if (response.status === 401) return signOut(ENDED());
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setStatus("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      if (e.name === "AbortError") return;
      console.warn("event stream:", e);
    }
    if (!signedIn()) return;
    setStatus("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    if (state.heads) refresh(); // while the stream is down, at least poll
  }
}

function onEvent(frame) {
  let name = "message";
  let data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (name !== "change") return;
  state.heads = JSON.parse(data);
  state.skew = Date.parse(state.heads.now) - Date.now();
  refresh();
}

async function refresh() {
  if (state.busy) { state.again = true; return; } // one refresh at a time, the latest last
  state.busy = true;
  const heads = state.heads;
  const [pending, active, alerts, decisions] = await Promise.allSettled([
    api("/v1/requests?state=pending"),
    api("/v1/requests?state=active"),
    api(`/v1/alerts?state=open&after=${Math.max(0, heads.alerts - 50)}&limit=50`),
    api(`/v1/logs?after=${Math.max(0, heads.log - 15)}&limit=15`),
  ]);
  show("#pending", pending, (v) => v.requests.sort(by("pending_until")).map(pendingItem), "Nothing waits for approval.");
  show("#active", active, (v) => v.requests.sort(by("expires_at")).map(activeItem), "No grant is active.");
  show("#alerts", alerts, (v) => v.alerts.reverse().map(alertItem), "No open alert.");
  show("#decisions", decisions, (v) => v.events.reverse().map(decisionItem), "No decision yet.");
  if (active.status === "fulfilled") await showActivity(active.value.requests);
  // console.js: the catalogue, my requests, the queue, the reviews due
  await refreshConsole(active).catch((e) => console.warn("console:", e));
  tick();
  state.shown = true;
  state.busy = false;
  if (state.again) { state.again = false; refresh(); }
}

const by = (key) => (a, b) => String(a[key]).localeCompare(String(b[key]));

function show(sel, outcome, items, emptyText) {
  const list = $(`${sel} .items`);
  const count = $(`${sel} .count`);
  if (outcome.status === "rejected") {
    const why = outcome.reason.status === 403 ? `Not for a ${state.role} token.` : `Could not load (${outcome.reason.message}).`;
    list.replaceChildren(h("li", { class: "empty" }, why));
    if (count) count.textContent = "";
    return;
  }
  const made = items(outcome.value);
  if (count) count.textContent = made.length ? `(${made.length})` : "";
  // A row whose record did not change stays as it is, with what was typed into it; one
  // whose record changed is drawn again and keeps what was typed, and the focus.
  const old = new Map([...list.children].filter((c) => c.dataset.version).map((c) => [c.dataset.key, c]));
  const rows = made.map((n) => {
    const was = old.get(n.dataset.key);
    if (!was || !n.dataset.version) return n;
    if (was.dataset.version === n.dataset.version) return was;
    keepTyped(was, n);
    return n;
  });
  const next = rows.length ? rows : [h("li", { class: "empty" }, emptyText)];
  if (next.length === list.children.length && next.every((n, i) => n === list.children[i])) return;
  list.replaceChildren(...next);
}

// What the person typed or chose in a row drawn again, matched by each field's label.
function keepTyped(was, row) {
  const active = document.activeElement;
  for (const field of was.querySelectorAll("input, textarea, select")) {
    const label = field.getAttribute("aria-label");
    const same = label && [...row.querySelectorAll("input, textarea, select")].find((f) => f.getAttribute("aria-label") === label);
    if (!same) continue;
    if (field.tagName === "SELECT") {
      if ([...same.options].some((o) => o.value === field.value)) same.value = field.value;
    } else if (field.value !== field.defaultValue) same.value = field.value;
    if (field === active) queueMicrotask(() => same.focus());
  }
}

// A row that is kept across refreshes while `record` stays the same.
function versioned(row, record) {
  row.dataset.version = JSON.stringify(record);
  return row;
}

// A row shown for the first time flashes once, so a change is seen without reading.
function item(key, ...children) {
  const fresh = state.shown && !state.seen.has(key);
  state.seen.add(key);
  return h("li", { class: fresh ? "fresh" : "", "data-key": key }, ...children);
}

// -- rows ------------------------------------------------------------------------------

function needs(req) {
  return req.approvals_required.map((a) => `${a.count} from ${a.group}`).join(", ") || "no approval";
}

// What a request asks: a copy to a region for a transfer, actions from a place otherwise.
function what(req) {
  if (req.kind === "transfer") return `copy to ${req.target_region}${req.importer ? ` for ${req.importer}` : ""}`;
  return `${req.actions.join(", ")} from ${req.state === "pending" ? req.location : req.countries.join(", ")}`;
}

function pendingItem(req) {
  return versioned(item(`request:${req.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, req.requester, " → ", req.resource, " ",
        req.kind !== "access" ? h("span", { class: "badge kind" }, req.kind) : null),
      h("div", { class: "detail" }, `${what(req)} for ${duration(req.duration_s * 1000)} · needs ${needs(req)}`),
      h("div", { class: "detail" }, req.reason ? `“${req.reason}”` : "", " ", h("span", { class: "id" }, req.id))),
    h("div", { class: "side" }, countdown(req.pending_until, "decide within"),
      state.role === "user" ? approveForm(req) : null, // even one's own: policy says why not
      state.stepUp.has(req.id) ? signInAgain(state.stepUp.get(req.id)) : null)), req);
}

// An approver approves from where they are: the country is part of the decision.
function approveForm(req) {
  const from = h("input", {
    "aria-label": "Country you approve from", placeholder: "CC", maxlength: "2", size: "2",
    value: localStorage.getItem("datavisa.from") || "",
  });
  const button = h("button", { type: "submit" }, "Approve");
  const form = h("form", {
    class: "approve",
    onsubmit: async (e) => {
      e.preventDefault();
      const location = from.value.trim().toUpperCase() || "unknown";
      localStorage.setItem("datavisa.from", location === "unknown" ? "" : location);
      button.disabled = true;
      try {
        await api(`/v1/requests/${req.id}/approve`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ location }),
        });
      } catch (err) {
        button.disabled = false;
        button.textContent = err.status === 403 ? "Not allowed" : "Try again";
        form.querySelector(".refusal")?.remove();
        form.append(refusal(err));
        const stepUp = reasons(err).find((r) => r.code === "step_up_required");
        if (stepUp && state.signIn && !state.stepUp.has(req.id)) {
          state.stepUp.set(req.id, stepUp); // kept across the refreshes the denial causes
          form.after(signInAgain(stepUp));
        }
      }
    },
  }, from, button);
  return form;
}

function reasons(err) {
  return ((err.body || {}).error || {}).reasons || [];
}

// Why the server refused, as it said it: its message and each of policy's reasons.
function refusal(err) {
  const error = (err.body || {}).error || {};
  return h("div", { class: "refusal error", role: "alert" },
    h("span", { class: "message" }, error.message || err.message),
    reasons(err).length
      ? h("ul", { class: "reasons" }, reasons(err).map((r) => h("li", { "data-code": r.code }, h("code", {}, r.code), " ", r.message)))
      : null);
}

// Policy wants a recent (and strong) sign-in for this step: the identity provider is
// asked to sign the person in again, as recently as the denial says; where the tier also
// takes the console's own step-up (its `methods`), the step-up page is offered first.
function signInAgain(reason) {
  const methods = (reason.step_up || {}).methods;
  const here = h("a", { href: `/step-up?${new URLSearchParams({ return_to: "/" })}`, class: "step-up-link" },
    methods && methods.includes("webauthn") ? "Step up with your security key" : "Step up");
  const asked = new URLSearchParams({ prompt: "login", return_to: "/" });
  const maxAge = (reason.step_up || {}).max_age_s;
  if (Number.isInteger(maxAge)) asked.set("max_age", String(maxAge));
  const acr = (reason.step_up || {}).acr_values;
  if (Array.isArray(acr) && acr.length) asked.set("acr_values", acr.join(" "));
  if (state.subject && !state.token) asked.set("login_hint", state.subject);
  return h("div", { class: "step-up", role: "alert" },
    reason.message || "", " ",
    Array.isArray(methods) && methods.length ? [here, " · "] : null,
    h("a", { href: `/auth/login?${asked}`, class: "sign-in-again" }, "Sign in again"));
}

function activeItem(req) {
  return versioned(item(`grant:${req.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, req.requester, " → ", req.resource, " ",
        req.kind === "breakglass" ? h("span", { class: "badge high" }, "break-glass") : null,
        req.kind === "transfer" ? h("span", { class: "badge kind" }, "transfer") : null,
        supervisedBadge(req)),
      h("div", { class: "detail" }, `${what(req)} · `, h("span", { class: "id" }, req.id))),
    h("div", { class: "side" }, countdown(req.expires_at, "ends in"),
      ["user", "admin"].includes(state.role) ? revokeForm(req) : null)), req);
}

// Whoever may revoke (the requester's approvers, an admin), policy says; anyone may ask.
function revokeForm(req) {
  const why = h("input", { "aria-label": `Why revoke ${req.id}`, placeholder: "why", maxlength: "1000", size: "10" });
  const button = h("button", { type: "submit" }, "Revoke");
  const form = h("form", {
    class: "approve",
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      form.querySelector(".refusal")?.remove();
      try {
        await send(`/v1/grants/${req.id}/revoke`, { reason: why.value.trim() });
      } catch (err) {
        button.disabled = false;
        form.append(refusal(err));
      }
    },
  }, why, button);
  return form;
}

// A state-changing call with a JSON body (the CSRF token rides along, see credentials).
function send(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
}

// A supervised grant works only while a supervisor is present (docs/supervision.md).
function supervisedBadge(req) {
  if (!req.supervision_state) return null;
  const present = req.supervision_state === "present";
  return h("span", { class: `badge ${present ? "kind" : "high"}` },
    present ? "supervised" : "supervised · no supervisor: paused");
}

// What each active grant's database role ran, as the database logged it (masked): the
// newest few statements under the grant, when it took effect in a data system.
async function showActivity(grants) {
  await Promise.allSettled(grants.map(async (req) => {
    const seen = await api(`/v1/grants/${req.id}/activity`);
    const row = $(`#active li[data-key="grant:${req.id}"] .main`);
    if (!row || (!seen.provisioning.length && !seen.activity.length)) return;
    row.querySelectorAll(".activity, .statement").forEach((el) => el.remove()); // a kept row
    const where = seen.provisioning.map((p) => `${p.sink}: ${p.state}`).join(", ");
    const ran = seen.activity.slice(-3).map((a) => h("div", { class: "statement" }, a.statement));
    row.append(h("div", { class: "detail activity" }, where), ...ran);
  }));
}

function alertItem(alert) {
  const ack = h("button", { type: "button", onclick: () => acknowledge(alert.id, ack) }, "Acknowledge");
  return item(`alert:${alert.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, h("span", { class: `badge ${alert.severity}` }, alert.severity), " ", alert.rule, " · ", alert.subject,
        alert.count > 1 ? h("span", { class: "repeats", title: `raised ${alert.count} times, first ${alert.raised_at}` }, ` ×${alert.count}`) : null),
      h("div", { class: "detail" }, alert.message)),
    h("div", { class: "side" }, since(alert.last_raised_at || alert.raised_at), ack));
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    await api(`/v1/alerts/${id}/ack`, { method: "POST" });
  } catch (e) {
    button.disabled = false;
    button.textContent = e.status === 403 ? "Not allowed" : "Try again";
  }
}

function decisionItem(event) {
  const input = event.input || {};
  const result = event.result || {};
  const kind = (event.path || "").split("/")[1] || "?";
  const who = input.subject || input.approver || input.actor || input.supervisor || input.requester || "-";
  const what = input.resource || (input.request || input.grant || {}).resource || "";
  const where = input.location || input.approver_location || "";
  const answer = result.allow === true ? "allow" : result.allow === false ? "deny" : "?";
  const reasons = [...new Set((result.reasons || []).map((r) => r.code))].join(", ");
  return item(`decision:${event.decision_id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, h("span", { class: `badge ${answer}` }, answer), ` ${kind} · ${who}`, what ? ` → ${what}` : ""),
      h("div", { class: "detail" }, [where && `from ${where}`, reasons].filter(Boolean).join(" · "))),
    h("div", { class: "side" }, since(event.timestamp)));
}

// -- the token -------------------------------------------------------------------------

function setStatus(text) {
  const el = $("#status");
  el.textContent = text;
  el.dataset.state = text;
}

const signedIn = () => Boolean(state.token || state.csrf);

function signOut(message) {
  const hadSession = Boolean(state.csrf) && !state.token;
  state.token = null;
  state.csrf = null;
  if (state.stream) state.stream.abort();
  localStorage.removeItem(KEY);
  $("#board").hidden = true;
  $("#forget").hidden = true;
  $("#sign-out").hidden = true;
  $("#who").textContent = "";
  $("#sign-in").hidden = !state.signIn;
  $("#login").hidden = false;
  const where = hadSession && state.signIn ? "#sign-in-error" : "#login-error";
  for (const sel of ["#sign-in-error", "#login-error"]) {
    $(sel).hidden = !(message && sel === where);
    $(sel).textContent = sel === where ? message || "" : "";
  }
  setStatus("offline");
}

function enter(me) {
  Object.assign(state, { subject: me.subject, role: me.role });
  $("#who").textContent = `${me.subject} (${me.role})`;
  $("#sign-in").hidden = true;
  $("#login").hidden = true;
  $("#board").hidden = false;
  $("#forget").hidden = !state.token;
  $("#sign-out").hidden = Boolean(state.token);
  listen();
}

async function signIn(token) {
  state.token = token;
  try {
    const me = await api("/v1/whoami");
    localStorage.setItem(KEY, token);
    enter(me);
  } catch (e) {
    if (state.token) signOut(`The server did not take that token (${e.message}).`);
  }
}

// Who the server's session cookie signs in, if anyone: 404 means the server has no
// sign-in with an identity provider (only tokens), 401 that no one is signed in.
async function session() {
  const response = await fetch("/auth/session", { cache: "no-store", credentials: "same-origin" });
  state.signIn = response.status !== 404;
  return response.ok ? response.json() : null;
}

async function endSession() {
  let away = null;
  try {
    away = (await api("/auth/logout", { method: "POST" })).end_session_url;
  } catch (e) {
    console.warn("sign-out:", e);
  }
  signOut("");
  if (away) location.assign(away); // signed out at the identity provider too
}

async function start() {
  // A link may carry the token as #token=...: kept, then taken out of the address bar.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) history.replaceState(null, "", location.pathname + location.search);
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("#token").value.trim());
  });
  $("#forget").addEventListener("click", () => signOut(""));
  $("#sign-out").addEventListener("click", endSession);
  setInterval(tick, 1000);
  const signed = await session().catch(() => null);
  if (fromLink) return signIn(fromLink);
  if (signed) {
    state.csrf = signed.csrf_token;
    return enter(signed);
  }
  const token = localStorage.getItem(KEY);
  if (token) signIn(token);
  else signOut("");
}

start();
