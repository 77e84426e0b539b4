// DataVisa's console: the requester's and the approver's views beside the live board of
// dashboard.js (whose helpers it uses: h, api, send, show, item, versioned, refusal ...).
// What a resource needs, which requests this person may approve, why something is refused:
// all of it is what the /v1 API answers from policy. This file shows it and sends the
// person's choices as /v1 calls; it decides nothing. Values go on the page as text.
"use strict";

const FROM_KEY = "datavisa.from"; // the country the person last said they work from
const RECENT_FINAL = 10; // ended requests shown under "My requests and grants"
const QUEUE_PAGE = 50; // requests the queue shows at first, and more each time asked
const QUEUE_MAX_PAGE = 200; // the most GET /v1/queue shows in one page
const cons = { catalogue: null, byId: new Map(), wired: false, queueWanted: QUEUE_PAGE };
// The supervised grants this page keeps its person present on: grant id → the heartbeat
// timer, how often the server said to renew, and why it stopped (a refusal), if it did.
const watching = new Map();
const stopped = new Map();

function approverCountry() {
  return ($("#approver-location").value.trim().toUpperCase() || localStorage.getItem(FROM_KEY) || "").slice(0, 2);
}

function remember(country) {
  if (/^[A-Z]{2}$/.test(country)) localStorage.setItem(FROM_KEY, country);
}

// Called by dashboard.js's refresh, on every change the event stream reports.
async function refreshConsole(active) {
  wire();
  const me = encodeURIComponent(state.subject);
  const from = approverCountry();
  const [catalogue, mine, queue, overdue] = await Promise.allSettled([
    cons.catalogue ? Promise.resolve(cons.catalogue) : api("/v1/catalogue"),
    api(`/v1/requests?requester=${me}`),
    queuePages(from),
    api("/v1/requests?overdue=true"),
  ]);
  if (catalogue.status === "fulfilled" && !cons.catalogue) {
    cons.catalogue = catalogue.value;
    cons.byId = new Map(catalogue.value.resources.map((r) => [r.id, r]));
    fillForms();
  }
  show("#catalogue", catalogue, (v) => v.resources.map(resourceItem), "No resource in the policy data.");
  const provisioned = mine.status === "fulfilled" ? await connectorsOf(mine.value.requests) : new Set();
  show("#mine", mine, (v) => mineOf(v.requests).map((r) => mineItem(r, provisioned.has(r.id))), "You have asked for nothing yet.");
  show("#queue", queue, (v) => v.requests.map(queueItem), "Nothing waits for your approval.");
  showMore(queue);
  const due = new Map();
  for (const outcome of [active, overdue]) {
    if (outcome.status !== "fulfilled") continue;
    for (const r of outcome.value.requests) {
      if (r.kind === "breakglass" && !r.reviewed_at && r.review_due) due.set(r.id, r);
    }
  }
  const reviews = active.status === "fulfilled" || overdue.status === "fulfilled"
    ? { status: "fulfilled", value: [...due.values()].sort(by("review_due")) } : active;
  show("#reviews", reviews, (v) => v.map(reviewItem), "No break-glass grant waits for review.");
  const supervised = active.status === "fulfilled"
    ? { status: "fulfilled", value: active.value.requests.filter((r) => r.supervision_state && r.kind !== "transfer") } : active;
  show("#supervise", supervised, (v) => v.map(superviseItem), "No active grant needs a supervisor.");
}

// The grants of mine a data system's connector provisioned (they have credentials).
async function connectorsOf(requests) {
  const live = requests.filter((r) => r.state === "active" && r.kind !== "transfer");
  const seen = await Promise.allSettled(live.map((r) => api(`/v1/grants/${r.id}/activity`)));
  return new Set(live.filter((r, i) => seen[i].status === "fulfilled" && seen[i].value.provisioning.length).map((r) => r.id));
}

// -- the catalogue and the request forms ----------------------------------------------

function needsOf(entry) {
  const list = (approvals) => approvals.map((a) => `${a.count} from ${a.group}`).join(", ");
  const parts = [entry.approvals.length ? `needs ${list(entry.approvals)}` : "needs no approval"];
  if (entry.cross_border_approvals.length) parts.push(`from abroad also ${list(entry.cross_border_approvals)}`);
  return parts.join("; ");
}

function resourceItem(entry) {
  const ask = h("button", { type: "button", onclick: () => choose(entry.id) }, "Request");
  return versioned(item(`resource:${entry.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, entry.id, " ", h("span", { class: "badge tier" }, entry.tier)),
      entry.description ? h("div", { class: "detail" }, entry.description) : null,
      h("div", { class: "detail" }, `held in ${entry.jurisdiction} (${entry.jurisdiction_name}), ${entry.region}`),
      h("div", { class: "detail needs" }, `${needsOf(entry)} · at most ${duration(entry.max_duration_s * 1000)}`),
      entry.safeguards && entry.safeguards.length ? h("div", { class: "detail" }, `safeguards: ${entry.safeguards.join(", ")}`) : null,
      entry.evidence.length ? h("div", { class: "detail" }, `evidence kinds: ${entry.evidence.join(", ")}`) : null),
    h("div", { class: "side" }, ask)), entry);
}

function choose(id) {
  $("#rq-resource").value = id;
  formFor(id);
  $("#rq-reason").focus();
}

function options(select, pairs, keep) {
  const was = keep ? select.value : null;
  select.replaceChildren(...pairs.map(([value, label]) => h("option", { value }, label)));
  if (was && pairs.some(([v]) => v === was)) select.value = was;
}

function checkboxes(fieldset, prefix, names, checked) {
  const legend = fieldset.querySelector("legend");
  const boxes = names.map((name) => {
    const id = `${prefix}-${name}`;
    const box = h("input", { type: "checkbox", id, value: name });
    box.checked = checked.includes(name);
    return h("span", { class: "check" }, box, h("label", { for: id }, name));
  });
  fieldset.replaceChildren(legend, ...(boxes.length ? boxes : [h("span", { class: "detail" }, "none")]));
}

const checked = (fieldset) => [...fieldset.querySelectorAll("input:checked")].map((b) => b.value);

function fillForms() {
  const ids = [...cons.byId.keys()].map((id) => [id, id]);
  options($("#rq-resource"), ids, true);
  options($("#tf-resource"), ids, true);
  $("#rq-location").value = localStorage.getItem(FROM_KEY) || "";
  $("#approver-location").value = localStorage.getItem(FROM_KEY) || "";
  formFor($("#rq-resource").value);
  transferFormFor($("#tf-resource").value);
}

// The form as the chosen resource's catalogue entry (policy) says: its actions, its
// durations up to the tier's maximum, the evidence kinds its bundle knows.
function formFor(id) {
  const entry = cons.byId.get(id);
  if (!entry) return;
  checkboxes($("#rq-actions"), "rq-action", entry.actions, entry.actions.slice(0, 1));
  options($("#rq-duration"), entry.duration_presets_s.map((s) => [String(s), duration(s * 1000)]));
  checkboxes($("#rq-evidence"), "rq-evidence", entry.evidence, []);
  const ahead = entry.max_schedule_ahead_s ? ` · a start at most ${duration(entry.max_schedule_ahead_s * 1000)} ahead` : "";
  $("#rq-needs").textContent = `${entry.jurisdiction} · ${entry.tier} · ${needsOf(entry)}${entry.justification_required ? " · a reason is required" : ""}${ahead}`;
}

function transferFormFor(id) {
  const entry = cons.byId.get(id);
  if (!entry) return;
  options($("#tf-window"), entry.duration_presets_s.map((s) => [String(s), duration(s * 1000)]));
  checkboxes($("#tf-evidence"), "tf-evidence", entry.evidence, []);
}

function outcome(sel, ...children) {
  $(sel).replaceChildren(...children);
}

async function fileRequest(e) {
  e.preventDefault();
  const location = $("#rq-location").value.trim().toUpperCase();
  remember(location);
  const body = {
    resource: $("#rq-resource").value,
    actions: checked($("#rq-actions")),
    duration: `${$("#rq-duration").value}s`,
    location,
    reason: $("#rq-reason").value.trim(),
    evidence: checked($("#rq-evidence")),
  };
  if ($("#rq-start").value) body.start_at = new Date($("#rq-start").value).toISOString();
  await submitting(e.submitter, "#rq-outcome", async () => {
    const made = await send("/v1/requests", body);
    $("#rq-reason").value = "";
    return `Asked: ${made.id}, ${made.state}${made.state === "pending" ? `, needs ${needs(made)}` : ""}.`;
  });
}

async function fileTransfer(e) {
  e.preventDefault();
  const body = {
    resource: $("#tf-resource").value,
    target_region: $("#tf-target").value.trim(),
    window: `${$("#tf-window").value}s`,
    reason: $("#tf-reason").value.trim(),
    evidence: checked($("#tf-evidence")),
  };
  if ($("#tf-importer").value.trim()) body.importer = $("#tf-importer").value.trim();
  if ($("#tf-keep").value.trim()) body.keep = $("#tf-keep").value.trim();
  await submitting(e.submitter, "#tf-outcome", async () => {
    const made = await send("/v1/transfers", body);
    return `Asked: transfer ${made.id}, ${made.state}${made.state === "pending" ? `, needs ${needs(made)}` : ""}.`;
  });
}

// Runs a call for a form: its button off meanwhile, then what came of it, in words.
async function submitting(button, sel, call) {
  if (button) button.disabled = true;
  outcome(sel); // what the last call said is gone at once
  try {
    outcome(sel, h("span", { class: "ok" }, await call()));
  } catch (err) {
    outcome(sel, refusal(err));
  } finally {
    if (button) button.disabled = false;
  }
}

function wire() {
  if (cons.wired) return;
  cons.wired = true;
  $("#request-form").addEventListener("submit", fileRequest);
  $("#transfer-form").addEventListener("submit", fileTransfer);
  $("#rq-resource").addEventListener("change", (e) => formFor(e.target.value));
  $("#tf-resource").addEventListener("change", (e) => transferFormFor(e.target.value));
  $("#queue button.more").addEventListener("click", loadMoreQueue);
  $("#approver-location").addEventListener("change", (e) => {
    remember(e.target.value.trim().toUpperCase());
    refresh();
  });
}

// -- my requests and grants -------------------------------------------------------------

const LIVE = new Set(["pending", "approved", "active"]);

function mineOf(requests) {
  const newest = [...requests].sort(by("created_at")).reverse();
  return [...newest.filter((r) => LIVE.has(r.state)), ...newest.filter((r) => !LIVE.has(r.state)).slice(0, RECENT_FINAL)];
}

function clock(req) {
  if (req.state === "pending") return countdown(req.pending_until, "decide within");
  if (req.state === "approved" && req.start_at) return countdown(req.start_at, "starts in");
  if (req.state === "active" && req.expires_at) return countdown(req.expires_at, "ends in");
  return null;
}

function ended(req) {
  if (LIVE.has(req.state)) return null;
  const by = req.ended_by ? ` by ${req.ended_by}` : "";
  return h("div", { class: "detail ended" }, `${req.state}${by}${req.end_reason ? `: ${req.end_reason}` : ""}`);
}

function mineItem(req, provisioned) {
  const acts = [];
  if (req.state === "pending" || req.state === "approved") acts.push(call("Cancel", `/v1/requests/${req.id}/cancel`));
  if (req.state === "active" && req.kind !== "transfer") {
    acts.push(extendForm(req), call("Relinquish", `/v1/grants/${req.id}/relinquish`));
    if (provisioned) acts.push(credentialsForm(req));
  }
  if (req.kind === "transfer" && req.activated_at && !req.deleted_at) {
    acts.push(call("Report copy deleted", `/v1/transfers/${req.id}/deleted`));
  }
  return versioned(item(`mine:${req.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, req.resource, " ", h("span", { class: `badge state ${req.state}` }, req.state),
        req.kind !== "access" ? h("span", { class: "badge kind" }, req.kind) : null),
      h("div", { class: "detail" }, `${what(req)} for ${duration(req.duration_s * 1000)}`,
        req.state === "pending" ? ` · needs ${needs(req)}` : "", " ", h("span", { class: "id" }, req.id)),
      ended(req)),
    h("div", { class: "side" }, clock(req), ...acts)), { req, provisioned });
}

// One button, one POST; a refusal is shown beside it as the server gave it.
function call(label, path, body) {
  const box = h("div", { class: "act" });
  const button = h("button", {
    type: "button",
    onclick: async () => {
      button.disabled = true;
      box.querySelector(".refusal")?.remove();
      try {
        await send(path, body || {});
      } catch (err) {
        button.disabled = false;
        box.append(refusal(err));
      }
    },
  }, label);
  box.append(button);
  return box;
}

function extendForm(req) {
  const entry = cons.byId.get(req.resource);
  const presets = entry ? entry.duration_presets_s : [900, 1800, 3600];
  const id = `extend-${req.id}`;
  const how = h("select", { id }, presets.map((s) => h("option", { value: String(s) }, duration(s * 1000))));
  const why = h("input", { "aria-label": `Why extend ${req.id}`, placeholder: "why", maxlength: "1000", size: "8" });
  return inlineForm([h("label", { for: id }, "Extend by"), how, why], "Extend", async () => {
    const ext = await send(`/v1/grants/${req.id}/extend`, { duration: `${how.value}s`, reason: why.value.trim() });
    return `extension ${ext.id}: ${ext.state}`;
  });
}

// A one-line form whose button makes one call: what it did, or the refusal, shown after it.
function inlineForm(fields, label, act) {
  const button = h("button", { type: "submit" }, label);
  const form = h("form", {
    class: "inline",
    onsubmit: async (e) => {
      e.preventDefault();
      form.querySelector(".refusal, .ok")?.remove();
      button.disabled = true;
      try {
        form.append(h("span", { class: "ok", role: "status" }, await act()));
      } catch (err) {
        form.append(refusal(err));
      } finally {
        button.disabled = false;
      }
    },
  }, ...fields, button);
  return form;
}

// The connection details a connector issued for the grant: judged as an access check
// from where the holder says they are; shown once, as text, never stored here.
function credentialsForm(req) {
  const where = h("input", { "aria-label": `Country you connect from (${req.id})`, placeholder: "CC", maxlength: "2", size: "2", value: localStorage.getItem(FROM_KEY) || "" });
  const button = h("button", { type: "submit" }, "Credentials");
  const shown = h("div", { class: "credentials" });
  const form = h("form", {
    class: "inline",
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      shown.replaceChildren();
      try {
        const got = await api(`/v1/grants/${req.id}/credentials?location=${encodeURIComponent(where.value.trim().toUpperCase())}`);
        shown.append(...Object.entries(got).filter(([, v]) => typeof v === "string").map(([k, v]) => h("div", {}, h("code", {}, k), " ", h("code", {}, v))));
      } catch (err) {
        shown.append(refusal(err));
      } finally {
        button.disabled = false;
      }
    },
  }, where, button, shown);
  return form;
}

// -- the approver's queue -----------------------------------------------------------------

// As many pages of the queue as the person asked to see (oldest first), following each
// page's cursor: {requests, total, more}. Which requests they are is the API's answer.
async function queuePages(from) {
  const requests = [];
  let cursor = null;
  let total = 0;
  do {
    const params = new URLSearchParams({ limit: String(Math.min(QUEUE_MAX_PAGE, cons.queueWanted - requests.length)) });
    if (from) params.set("location", from);
    if (cursor) params.set("cursor", cursor);
    const page = await api(`/v1/queue?${params}`);
    requests.push(...page.requests);
    ({ total, next_cursor: cursor } = page);
  } while (cursor && requests.length < cons.queueWanted);
  return { requests, total, more: Boolean(cursor) };
}

// The queue's count says how many there are in all, and a button shows the next ones.
function showMore(queue) {
  const section = $("#queue");
  const count = section.querySelector(".count");
  const more = section.querySelector("button.more");
  if (queue.status !== "fulfilled") {
    more.hidden = true;
    return;
  }
  const { requests, total } = queue.value;
  if (count && requests.length < total) count.textContent = `(${requests.length} of ${total})`;
  more.hidden = !queue.value.more;
}

async function loadMoreQueue(event) {
  const button = event.currentTarget;
  const shown = $("#queue .items").children.length;
  cons.queueWanted += QUEUE_PAGE;
  button.disabled = true;
  try {
    const queue = await Promise.allSettled([queuePages(approverCountry())]);
    show("#queue", queue[0], (v) => v.requests.map(queueItem), "Nothing waits for your approval.");
    showMore(queue[0]);
  } finally {
    button.disabled = false;
  }
  // Keyboard users go on from the first row the button added, not back to the top.
  const first = $("#queue .items").children[shown];
  const target = first?.querySelector("button") || (button.hidden ? null : button);
  target?.focus();
}

function placed(origin) {
  if (!origin) return "where the requester was is no longer in the decision log";
  const said = origin.declared ? `said ${origin.declared}` : null;
  const seen = origin[origin.source] && origin.source !== "declared" ? `${origin.source} ${origin[origin.source]}` : null;
  return `requester located by ${origin.source}${origin.channel ? ` (${origin.channel})` : ""}: ${[said, seen].filter(Boolean).join(", ")}`;
}

function stillNeeded(decision) {
  if (!decision.still_needed.length) return "this approval completes the quorum";
  return "still needed: " + decision.still_needed.map((n) =>
    `${n.count} from ${n.group}${n.approved_by.length ? ` (approved by ${n.approved_by.join(", ")})` : ""}`).join("; ");
}

function recent(grants) {
  if (!grants.length) return "no grant on this data in the last 90 days";
  return "recent grants on this data: " + grants.map((g) =>
    `${g.actions.join(", ")} ${duration(g.duration_s * 1000)} (${g.state}, ${(g.approved_at || g.created_at).slice(0, 10)})`).join("; ");
}

function queueItem(entry) {
  const req = entry.request;
  const decision = entry.decision;
  const residency = decision.residency || {};
  const approve = h("button", {
    type: "button",
    onclick: async () => {
      approve.disabled = true;
      side.querySelector(".refusal")?.remove();
      const location = approverCountry() || "unknown";
      remember(location);
      try {
        await send(`/v1/requests/${req.id}/approve`, { location });
      } catch (err) {
        approve.disabled = false;
        side.append(refusal(err));
        const stepUp = reasons(err).find((r) => r.code === "step_up_required");
        if (stepUp && state.signIn) side.append(signInAgain(stepUp));
      }
    },
  }, "Approve");
  const commentId = `deny-comment-${req.id}`;
  const comment = h("textarea", { id: commentId, rows: "2", maxlength: "1000" });
  const denyButton = h("button", { type: "submit" }, "Deny");
  const deny = h("form", {
    class: "deny",
    onsubmit: async (e) => {
      e.preventDefault();
      denyButton.disabled = true;
      deny.querySelector(".refusal")?.remove();
      try {
        await send(`/v1/requests/${req.id}/deny`, { reason: comment.value.trim() });
      } catch (err) {
        denyButton.disabled = false;
        deny.append(refusal(err));
      }
    },
  }, h("label", { for: commentId }, "Comment"), comment, denyButton);
  const side = h("div", { class: "side decide" }, countdown(req.pending_until, "decide within"), approve, deny,
    decision.step_up ? h("div", { class: "step-up" }, decision.reasons.map((r) => r.message).join(" "), " ",
      state.signIn ? signInAgain(decision.reasons[0]) : null) : null);
  return versioned(item(`queue:${req.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, req.requester, " → ", req.resource, " ",
        req.kind !== "access" ? h("span", { class: "badge kind" }, req.kind) : null,
        residency.cross_border ? h("span", { class: "badge medium" }, "cross-border") : null),
      h("div", { class: "detail allows" }, `would allow ${what(req)} for ${duration(req.duration_s * 1000)}`,
        req.evidence && req.evidence.length ? ` · evidence: ${req.evidence.join(", ")}` : ""),
      h("div", { class: "detail residency" }, residency.explanation || ""),
      h("div", { class: "detail origin" }, placed(entry.origin)),
      h("div", { class: "detail needed" }, stillNeeded(decision)),
      h("div", { class: "detail recent" }, recent(entry.recent_grants || [])),
      h("div", { class: "detail" }, req.reason ? `“${req.reason}”` : "", " ", h("span", { class: "id" }, req.id))),
    side), entry);
}

// -- break-glass reviews --------------------------------------------------------------------

function reviewItem(req) {
  const id = `review-${req.id}`;
  const verdict = h("select", { id: `${id}-outcome` }, ["accepted", "rejected"].map((o) => h("option", { value: o }, o)));
  const notes = h("textarea", { id: `${id}-notes`, rows: "2", maxlength: "4000" });
  const button = h("button", { type: "submit" }, "Record review");
  const form = h("form", {
    class: "deny",
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      form.querySelector(".refusal")?.remove();
      try {
        await send(`/v1/grants/${req.id}/review`, { outcome: verdict.value, notes: notes.value.trim() });
      } catch (err) {
        button.disabled = false;
        form.append(refusal(err));
      }
    },
  }, h("label", { for: `${id}-outcome` }, "Outcome"), verdict, h("label", { for: `${id}-notes` }, "Notes"), notes, button);
  return versioned(item(`review:${req.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, req.requester, " → ", req.resource, " ", h("span", { class: "badge high" }, "break-glass")),
      h("div", { class: "detail" }, `${what(req)} · `, req.reason ? `“${req.reason}” ` : "", h("span", { class: "id" }, req.id))),
    h("div", { class: "side decide" }, countdown(req.review_due, "review due in"), form)), req);
}

// -- supervising ----------------------------------------------------------------------------
// Who may supervise, from where, and for how long a join counts, is policy's
// (datavisa.supervision); this page sends the join from the country the person approves
// from, renews it every heartbeat_s the server answered while the page is open, and
// leaves when the page closes. A refusal stops the heartbeats and is shown as the server
// said it.

const PRESENCE = {
  present: "a supervisor is present: the grant works",
  absent: "no supervisor present: login refused, checks deny",
  ended: "no supervisor present past the grace: sessions ended",
};

function superviseItem(req) {
  const mine = watching.get(req.id);
  const refused = stopped.get(req.id);
  const side = h("div", { class: "side decide" }, countdown(req.expires_at, "ends in"));
  if (mine) {
    side.append(
      h("span", { class: "ok", role: "status" }, `you supervise it: renewed every ${mine.heartbeat_s}s`),
      h("button", { type: "button", onclick: () => leave(req.id) }, "Leave"),
      endSessionForm(req),
      revokeForm(req));
  } else {
    const join = h("button", { type: "button", onclick: () => joinFrom(req, join, side) }, "Join as supervisor");
    side.append(join);
  }
  if (refused) side.append(refusal(refused));
  return versioned(item(`supervise:${req.id}`,
    h("div", { class: "main" },
      h("div", { class: "title" }, req.requester, " → ", req.resource, " ",
        h("span", { class: `badge supervision ${req.supervision_state}` }, req.supervision_state)),
      h("div", { class: "detail presence" }, PRESENCE[req.supervision_state] || req.supervision_state),
      h("div", { class: "detail" }, `${what(req)} · `, h("span", { class: "id" }, req.id))),
    side), { req, joined: Boolean(mine), refused: refused ? refused.message : null });
}

async function joinFrom(req, button, side) {
  button.disabled = true;
  side.querySelector(".refusal, .step-up")?.remove();
  const location = approverCountry() || "unknown";
  remember(location);
  try {
    const joined = await send(`/v1/grants/${req.id}/supervision`, { location });
    stopped.delete(req.id);
    keepPresent(req.id, location, Number(joined.heartbeat_s) || 1);
    refresh();
  } catch (err) {
    button.disabled = false;
    side.append(refusal(err));
    const stepUp = reasons(err).find((r) => r.code === "step_up_required");
    if (stepUp && state.signIn) side.append(signInAgain(stepUp));
  }
}

function keepPresent(id, location, heartbeatS) {
  clearInterval(watching.get(id)?.timer);
  const timer = setInterval(() => heartbeat(id, location), Math.max(1, heartbeatS) * 1000);
  watching.set(id, { timer, heartbeat_s: heartbeatS });
}

async function heartbeat(id, location) {
  try {
    await send(`/v1/grants/${id}/supervision`, { location });
  } catch (err) {
    // Refused (policy), or the grant ended: stop and say why. Anything else (the
    // network, a restart) is tried again at the next heartbeat, within the lease.
    if (![403, 404, 409].includes(err.status)) return;
    clearInterval(watching.get(id)?.timer);
    watching.delete(id);
    stopped.set(id, err);
    refresh();
  }
}

async function leave(id) {
  clearInterval(watching.get(id)?.timer);
  watching.delete(id);
  try {
    await api(`/v1/grants/${id}/supervision`, { method: "DELETE" });
  } catch (err) {
    stopped.set(id, err);
  }
  refresh();
}

// The page closes (or is navigated away from): every lease it kept is left, with a
// request the browser sends on after the page is gone.
window.addEventListener("pagehide", () => {
  for (const [id, mine] of watching) {
    clearInterval(mine.timer);
    fetch(`/v1/grants/${id}/supervision`, {
      method: "DELETE", keepalive: true, credentials: "same-origin", headers: credentials("DELETE"),
    }).catch(() => {});
  }
  watching.clear();
});

// One session of the grant's account, as `datavisa watch` and the activity name it.
function endSessionForm(req) {
  const id = `end-session-${req.id}`;
  const session = h("input", { id, maxlength: "40", size: "10", autocomplete: "off", spellcheck: "false", placeholder: "session", required: "" });
  return inlineForm([h("label", { for: id }, "Session"), session], "End session", async () => {
    const which = session.value.trim();
    const done = await send(`/v1/grants/${req.id}/sessions/${encodeURIComponent(which)}/end`, {});
    return done.state === "pending"
      ? `session ${done.session}: asked to end, not yet done at ${(done.pending_sinks || []).join(", ")} (retried)`
      : `session ${done.session} ${done.state} (${done.sink})`;
  });
}
