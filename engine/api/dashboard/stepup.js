// The step-up page: enrol a security key or passkey (WebAuthn), step up with it, or
// where policy allows it, with an authenticator app's code; then back to the console.
// The server verifies everything (engine/stepup); this only carries the browser's
// answers. Every value is put on the page as text.
"use strict";

// Where to go back to: a path of this server only (the server refused the page for
// anything else; checked again here, as the server's own rule says it).
const RETURN_TO = /^\/([A-Za-z0-9_.~-][A-Za-z0-9/_.~-]{0,200})?$/;
const asked = new URLSearchParams(location.search).get("return_to") || "/";
const returnTo = RETURN_TO.test(asked) ? asked : "/";
let csrf = null;

const $ = (sel) => document.querySelector(sel);

async function call(path, body) {
  const options = { cache: "no-store", credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    Object.assign(options, { method: "POST", body: JSON.stringify(body) });
    Object.assign(options.headers, { "Content-Type": "application/json", "X-CSRF-Token": csrf });
  }
  const response = await fetch(path, options);
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (answer && answer.error) || {};
    const named = error.field ? ` (${error.field})` : "";
    throw Object.assign(new Error((error.message || `HTTP ${response.status}`) + named),
      { status: response.status, code: error.code });
  }
  return answer;
}

function problem(err) {
  const shown = $("#problem");
  shown.textContent = err ? err.message : "";
  shown.dataset.code = (err && err.code) || "";
  shown.hidden = !err;
}

function done(method) {
  $("#outcome").textContent = `Stepped up with ${method === "webauthn" ? "your security key" : "your authenticator app"}: back to the console…`;
  location.assign(returnTo);
}

async function enrol() {
  problem(null);
  try {
    const options = await call("/v1/step-up/webauthn/register/options", {});
    const made = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
    await call("/v1/step-up/webauthn/register/verify", { credential: made.toJSON() });
    $("#outcome").textContent = "Security key enrolled.";
    await show();
    $("#assert").focus();
  } catch (err) {
    problem(err);
  }
}

async function stepUp() {
  problem(null);
  try {
    const options = await call("/v1/step-up/webauthn/assert/options", {});
    const got = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
    const answer = await call("/v1/step-up/webauthn/assert/verify", { credential: got.toJSON() });
    done(answer.method);
  } catch (err) {
    problem(err);
  }
}

async function totpEnrol() {
  problem(null);
  try {
    const secret = await call("/v1/step-up/totp/enrol", {});
    $("#totp-key").textContent = secret.secret;
    $("#totp-uri").textContent = secret.uri;
    $("#totp-secret").hidden = false;
    $("#totp").hidden = false;
    $("#totp-enrol").hidden = true;
    $("#totp-code").focus();
  } catch (err) {
    problem(err);
  }
}

async function totpVerify(event) {
  event.preventDefault();
  problem(null);
  try {
    const answer = await call("/v1/step-up/totp/verify", { code: $("#totp-code").value.trim() });
    done(answer.method);
  } catch (err) {
    problem(err);
  }
}

async function show() {
  const held = await call("/v1/step-up");
  $("#who").textContent = held.subject;
  const keys = held.credentials.length;
  $("#key").hidden = false;
  $("#key-held").textContent = keys
    ? `You have ${keys} security key${keys > 1 ? "s" : ""} or passkey${keys > 1 ? "s" : ""} enrolled.`
    : "You have no security key or passkey enrolled yet.";
  $("#assert").hidden = keys === 0;
  $("#enrol").textContent = keys ? "Enrol another security key" : "Enrol a security key";
  $("#app").hidden = !held.totp.allowed;
  $("#totp-enrol").hidden = held.totp.enrolled;
  $("#totp").hidden = !held.totp.enrolled;
}

async function start() {
  $("#back").setAttribute("href", returnTo);
  $("#enrol").addEventListener("click", enrol);
  $("#assert").addEventListener("click", stepUp);
  $("#totp-enrol").addEventListener("click", totpEnrol);
  $("#totp").addEventListener("submit", totpVerify);
  try {
    csrf = (await call("/auth/session")).csrf_token;
  } catch (err) {
    $("#sign-in").hidden = false;
    return problem(err);
  }
  try {
    await show();
  } catch (err) {
    problem(err);
  }
}

start();
