// The admin panel: sign-in, the keys table, the key detail view and its dialogs.
// Every read and change goes through the admin API; its error messages are shown
// as they are.

import { ApiFailure, call, download, keyPath, onUnauthorized, session } from "./api.js";
import { drawUsage, peakText, usageSummary, usageTotals } from "./chart.js";
import { $, fill, formatMoment, formatNumber, h, timeElement } from "./dom.js";
import { FIELD_LABELS, OPERATIONS, keyForm, rateLimitText } from "./form.js";

const VIEWS = ["view-sign-in", "view-keys", "view-key", "view-help"];
const GRACE_DEFAULT_S = 86400;

const state = {
  keys: [],
  key: null, // the key shown in the detail view
  revealed: null, // its value, while revealed
  usage: [],
  secret: null, // { id, name, value } shown in the secret dialog
};

// ---- feedback ---------------------------------------------------------------

function toast(message, kind = "info") {
  const item = h("div", { class: `toast toast-${kind}`, text: message });
  $("toasts").append(item);
  setTimeout(() => item.remove(), kind === "error" ? 7000 : 3500);
}

/** A failure as one line for people: the API's message, or what went wrong. */
function describe(error) {
  if (error instanceof ApiFailure) return error.message;
  return error && error.message ? error.message : String(error);
}

function showFormError(element, error) {
  element.textContent = describe(error);
  element.hidden = false;
}

function hideFormError(element) {
  element.hidden = true;
  element.textContent = "";
}

/** Run an action from a button: disabled while it runs, failures shown. */
async function busy(button, action, onError = (error) => toast(describe(error), "error")) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await action();
  } catch (error) {
    if (!error.handled) onError(error);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

async function copy(value, source) {
  try {
    await navigator.clipboard.writeText(value);
    toast("Copied to the clipboard");
  } catch {
    // No clipboard access (e.g. plain HTTP to another host): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    toast("The browser refused clipboard access: the value is selected, press Ctrl+C");
  }
}

// ---- dialogs ----------------------------------------------------------------

const openers = new WeakMap();
const FOCUSABLE = "button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])";

function openDialog(dialog, focus) {
  openers.set(dialog, document.activeElement);
  dialog.showModal();
  if (focus) focus.focus();
}

function setUpDialogs() {
  for (const dialog of document.querySelectorAll("dialog")) {
    for (const button of dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => dialog.close());
    }
    // A modal dialog already makes the page behind it inert; this keeps Tab from
    // leaving for the browser's own controls, so focus cycles inside the dialog.
    dialog.addEventListener("keydown", (event) => {
      if (event.key !== "Tab") return;
      const focusable = [...dialog.querySelectorAll(FOCUSABLE)].filter(
        (element) => !element.disabled && element.getClientRects().length > 0,
      );
      if (!focusable.length) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    });
    dialog.addEventListener("close", () => {
      const opener = openers.get(dialog);
      if (opener && opener.isConnected && !opener.closest("[hidden]")) opener.focus();
    });
  }
}

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

// ---- small pieces -----------------------------------------------------------

/** "active", "not yet valid" or "expired", by the browser's clock. */
export function keyStatus(key, now = Date.now()) {
  if (key.notValidBefore && now < Date.parse(key.notValidBefore)) return "not yet valid";
  if (key.notValidAfter && now >= Date.parse(key.notValidAfter)) return "expired";
  return "active";
}

function statusPill(key) {
  const status = keyStatus(key);
  const kind = { active: "ok", "not yet valid": "pending", expired: "off" }[status];
  let title = "";
  if (status === "not yet valid") title = `Valid from ${formatMoment(key.notValidBefore)}`;
  else if (status === "expired") title = `Expired ${formatMoment(key.notValidAfter)}`;
  else if (key.notValidAfter) title = `Valid until ${formatMoment(key.notValidAfter)}`;
  return h("span", { class: `pill pill-${kind}`, title: title || null }, status);
}

function permissionChips(key) {
  const allowed = OPERATIONS.filter(([op]) => key.permissions[op]);
  const chips = allowed.map(([op, label]) => h("span", { class: "chip", title: label }, op));
  if (key.admin) chips.push(h("span", { class: "chip chip-admin", title: "Admin" }, "admin"));
  if (!chips.length) chips.push(h("span", { class: "muted" }, "none"));
  if (key.rateLimit) {
    const limit = key.rateLimit;
    chips.push(
      h(
        "span",
        { class: "chip chip-limit", title: `Rate limit: at most ${rateLimitText(limit)}` },
        `${limit.requests}/${limit.perSeconds}s`,
      ),
    );
  }
  return h("span", { class: "chips" }, chips);
}

function showView(id, title) {
  for (const view of VIEWS) $(view).hidden = view !== id;
  const signedIn = id !== "view-sign-in";
  $("tabs").hidden = !signedIn;
  $("session").hidden = !signedIn;
  const tab = id === "view-help" ? "help" : "keys";
  for (const link of document.querySelectorAll(".tab")) {
    if (link.dataset.tab === tab && signedIn) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${title} · share-gateway`;
}

// ---- sign-in ----------------------------------------------------------------

function showSignIn(message = "") {
  closeDialogs();
  state.key = null;
  state.revealed = null;
  showView("view-sign-in", "Sign in");
  const error = $("sign-in-error");
  if (message) showFormError(error, { message });
  else hideFormError(error);
  $("admin-token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("admin-token");
  const token = input.value.trim();
  const error = $("sign-in-error");
  if (!token) {
    showFormError(error, { message: "Enter an admin token." });
    input.focus();
    return;
  }
  await busy(
    $("sign-in"),
    async () => {
      const { keys } = await call("GET", "/keys", { token });
      session.token = token;
      input.value = "";
      hideFormError(error);
      state.keys = keys;
      if (!location.hash || location.hash === "#/") history.replaceState(null, "", "#/keys");
      await route();
    },
    (failure) => {
      const why =
        failure instanceof ApiFailure && failure.status === 401
          ? `The admin API refused this token: ${failure.message}.`
          : `Could not sign in: ${describe(failure)}`;
      showFormError(error, { message: why });
      input.select();
    },
  );
}

function signOut() {
  session.clear();
  state.keys = [];
  history.replaceState(null, "", location.pathname);
  showSignIn();
}

// ---- keys table ---------------------------------------------------------------

function keyRow(key) {
  const href = `#/keys/${encodeURIComponent(key.id)}`;
  const link = h("a", { href, class: "key-link" }, key.name);
  const nameCell = h("td", { class: "cell-name" }, link);
  if (key.description) {
    nameCell.append(h("div", { class: "cell-sub", title: key.description }, key.description));
  }
  const row = h(
    "tr",
    { "data-key-id": key.id },
    nameCell,
    h("td", {}, h("code", { class: "masked" }, key.maskedValue)),
    h("td", {}, permissionChips(key)),
    h("td", {}, statusPill(key)),
    h("td", { class: "num" }, formatNumber(key.usageCount)),
    h("td", { class: "nowrap" }, timeElement(key.lastUsedAt, "Never")),
  );
  // The whole row opens the key; the link inside stays the keyboard's way in.
  row.addEventListener("click", (event) => {
    if (event.target.closest("a, button") || window.getSelection().toString()) return;
    link.click();
  });
  return row;
}

function renderKeys() {
  const filter = $("key-filter").value.trim().toLowerCase();
  const shown = state.keys.filter(
    (key) =>
      !filter ||
      key.name.toLowerCase().includes(filter) ||
      key.maskedValue.toLowerCase().includes(filter),
  );
  fill($("keys-body"), shown.map(keyRow));
  $("keys-empty").hidden = state.keys.length > 0;
  $("keys-table").hidden = state.keys.length === 0;
  const total = state.keys.length;
  $("key-count").textContent = filter
    ? `${shown.length} of ${total} keys`
    : `${total} ${total === 1 ? "key" : "keys"}`;
}

async function loadKeys() {
  const { keys } = await call("GET", "/keys");
  state.keys = keys;
  renderKeys();
}

async function showKeys() {
  showView("view-keys", "API Keys");
  renderKeys();
  try {
    await loadKeys();
  } catch (error) {
    if (!error.handled) toast(describe(error), "error");
  }
}

// ---- create -----------------------------------------------------------------

const createForm = keyForm("create");
const editForm = keyForm("edit", { wide: true });

function openCreate() {
  createForm.load(null);
  hideFormError($("create-error"));
  openDialog($("create-dialog"));
  createForm.focus();
}

async function submitCreate(event) {
  event.preventDefault();
  const error = $("create-error");
  hideFormError(error);
  await busy(
    $("create-submit"),
    async () => {
      const key = await call("POST", "/keys", { body: createForm.body() });
      $("create-dialog").close();
      showSecret(key, "API key created", [
        "The full value of ",
        h("strong", {}, key.name),
        " is below. Give it to the key's client; you can reveal it again later.",
      ]);
      await loadKeys().catch(() => {});
    },
    (failure) => {
      createForm.clearErrors();
      if (!(failure instanceof ApiFailure) || !createForm.showError(failure)) {
        showFormError(error, failure);
      }
    },
  );
}

// ---- the secret dialog: a value in full, after create or rotate ----------------

function showSecret(key, title, intro, note = "") {
  state.secret = { id: key.id, name: key.name, value: key.value };
  $("secret-title").textContent = title;
  fill($("secret-intro"), intro);
  $("secret-value").textContent = key.value;
  $("secret-note").textContent = note;
  $("secret-note").hidden = !note;
  openDialog($("secret-dialog"), $("secret-copy"));
}

// ---- key detail -------------------------------------------------------------

function renderKey() {
  const key = state.key;
  $("key-title").textContent = key.name;
  fill($("key-status"), statusPill(key));
  $("key-id").textContent = `id ${key.id}`;
  renderValue();
  fill($("fact-created"), timeElement(key.createdAt));
  fill($("fact-updated"), timeElement(key.updatedAt));
  $("fact-created-by").textContent = key.createdBy;
  $("fact-usage").textContent = formatNumber(key.usageCount);
  $("fact-denied").textContent = formatNumber(key.deniedCount);
  fill($("fact-last-used"), timeElement(key.lastUsedAt, "Never"));
  const previous = $("key-previous");
  const graceUntil = key.previousValidUntil && Date.parse(key.previousValidUntil);
  previous.hidden = !(graceUntil && graceUntil > Date.now());
  previous.textContent = previous.hidden
    ? ""
    : `The previous value keeps working until ${formatMoment(key.previousValidUntil)}.`;
}

function renderValue() {
  const shown = state.revealed !== null;
  const value = $("key-value");
  value.textContent = shown ? state.revealed : state.key.maskedValue;
  value.classList.toggle("secret-revealed", shown);
  $("reveal-key").textContent = shown ? "Hide" : "Reveal";
  $("reveal-key").setAttribute("aria-pressed", String(shown));
  $("copy-key").hidden = !shown;
}

function renderUsage() {
  const summary = usageSummary(state.usage);
  const { peak } = usageTotals(state.usage);
  fill(
    $("usage-summary"),
    h("span", { id: "usage-totals" }, summary),
    peak ? h("span", { class: "muted" }, ` · ${peakText(peak)}`) : null,
  );
  drawUsage($("usage-chart"), state.usage, summary);
}

async function loadUsage() {
  const { buckets } = await call("GET", keyPath(state.key.id, "usage"));
  state.usage = buckets;
  renderUsage();
}

function updateDirty() {
  const dirty = editForm.dirty();
  $("edit-dirty").textContent = dirty ? "Unsaved changes" : "";
  $("edit-save").classList.toggle("btn-attention", dirty);
}

async function showKey(id) {
  showView("view-key", "API Key");
  const view = $("view-key");
  if (!state.key || state.key.id !== id) {
    // Another key's figures must not show while this one loads.
    state.key = null;
    state.revealed = null;
    state.usage = [];
    view.dataset.state = "loading";
    $("key-title").textContent = "Loading…";
    $("key-status").replaceChildren();
    $("key-id").textContent = "";
  }
  try {
    const [key, usage] = await Promise.all([
      call("GET", keyPath(id)),
      call("GET", keyPath(id, "usage")),
    ]);
    state.key = key;
    state.usage = usage.buckets;
    renderKey();
    editForm.load(key);
    hideFormError($("edit-error"));
    updateDirty();
    renderUsage();
    document.title = `${key.name} · share-gateway`;
  } catch (error) {
    if (error.handled) return;
    toast(describe(error), "error");
    if (error instanceof ApiFailure && error.status === 404) location.hash = "#/keys";
  } finally {
    delete view.dataset.state;
  }
}

async function reveal() {
  if (state.revealed !== null) {
    state.revealed = null;
    renderValue();
    return;
  }
  await busy($("reveal-key"), async () => {
    const { value } = await call("POST", keyPath(state.key.id, "reveal"));
    state.revealed = value;
    renderValue();
  });
}

async function saveKey(event) {
  event.preventDefault();
  const error = $("edit-error");
  hideFormError(error);
  const changes = editForm.changes();
  if (!Object.keys(changes).length) {
    toast("Nothing to save: no field has changed");
    return;
  }
  await busy(
    $("edit-save"),
    async () => {
      const key = await call("PATCH", keyPath(state.key.id), { body: changes });
      state.key = key;
      renderKey();
      editForm.load(key);
      updateDirty();
      toast(`Saved ${key.name}`);
    },
    (failure) => {
      if (!(failure instanceof ApiFailure) || !editForm.showError(failure)) {
        showFormError(error, failure);
      }
    },
  );
}

// ---- history ----------------------------------------------------------------

const ACTIONS = {
  created: "Created",
  updated: "Updated",
  revealed: "Revealed",
  downloaded: "Downloaded",
  rotated: "Rotated",
  deleted: "Deleted",
};
const MOMENT_FIELDS = new Set(["notValidBefore", "notValidAfter", "previousValidUntil"]);

function historyValue(field, value) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "none");
  if (field === "permissions") {
    const ops = OPERATIONS.map(([op]) => op).filter((op) => value[op]);
    return h("span", {}, ops.length ? ops.join(", ") : "none");
  }
  if (MOMENT_FIELDS.has(field)) return timeElement(value);
  if (field === "rateLimit") return h("span", {}, rateLimitText(value));
  if (typeof value === "boolean") return h("span", {}, value ? "yes" : "no");
  if (Array.isArray(value)) {
    const empty = field === "allowedIps" ? "any" : "none";
    if (!value.length) return h("span", { class: "muted" }, empty);
    return h("span", { class: "mono" }, value.join(", "));
  }
  if (value === "") return h("span", { class: "muted" }, "empty");
  return h("span", { class: "history-text" }, String(value));
}

function changesTable(event) {
  if (!event.changes.length) return null;
  // A creation has no old values: it lists the fields it started with.
  const created = event.action === "created";
  const head = created
    ? [h("th", { scope: "col", class: "col-field" }, "Field"), h("th", { scope: "col" }, "Value")]
    : [
        h("th", { scope: "col", class: "col-field" }, "Field"),
        h("th", { scope: "col" }, "Old"),
        h("th", { scope: "col", class: "col-arrow" }, h("span", { class: "visually-hidden" }, "→")),
        h("th", { scope: "col" }, "New"),
      ];
  const rows = event.changes.map((change) => {
    const label = FIELD_LABELS[change.field] || change.field;
    const cells = created
      ? [h("td", { class: "change-new" }, historyValue(change.field, change.new))]
      : [
          h("td", { class: "change-old" }, historyValue(change.field, change.old)),
          h("td", { class: "change-arrow", "aria-hidden": "true" }, "→"),
          h("td", { class: "change-new" }, historyValue(change.field, change.new)),
        ];
    return h(
      "tr",
      { "data-field": change.field },
      h("th", { scope: "row", title: change.field }, label),
      cells,
    );
  });
  return h("table", { class: "changes" }, h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows));
}

function historyEvent(event) {
  const action = ACTIONS[event.action] || event.action;
  return h(
    "li",
    { class: `event event-${event.action}` },
    h(
      "div",
      { class: "event-head" },
      h("span", { class: `pill pill-action action-${event.action}` }, action),
      h("span", { class: "event-actor" }, "by ", h("strong", {}, event.actor)),
      h("span", { class: "event-time" }, timeElement(event.at)),
    ),
    changesTable(event),
  );
}

async function openHistory() {
  await busy($("open-history"), async () => {
    const { events } = await call("GET", keyPath(state.key.id, "history"));
    $("history-subtitle").textContent = `${state.key.name} · ${events.length} ${
      events.length === 1 ? "event" : "events"
    }, newest first`;
    fill($("history-list"), events.map(historyEvent));
    openDialog($("history-dialog"));
    $("history-dialog").querySelector(".dialog-body").scrollTop = 0;
  });
}

// ---- rotate and delete ------------------------------------------------------

function openRotate() {
  hideFormError($("rotate-error"));
  $("rotate-grace").value = String(GRACE_DEFAULT_S);
  openDialog($("rotate-dialog"), $("rotate-grace"));
}

async function submitRotate(event) {
  event.preventDefault();
  const grace = Number($("rotate-grace").value);
  await busy(
    $("rotate-submit"),
    async () => {
      const key = await call("POST", keyPath(state.key.id, "rotate"), {
        body: { gracePeriodSeconds: grace },
      });
      $("rotate-dialog").close();
      const note = key.previousValidUntil
        ? `The previous value keeps working until ${formatMoment(key.previousValidUntil)}.`
        : "The previous value no longer works.";
      const { value, ...masked } = key;
      state.key = masked;
      state.revealed = null;
      renderKey();
      showSecret(key, "Key rotated", ["The new value of ", h("strong", {}, key.name), ":"], note);
    },
    (failure) => showFormError($("rotate-error"), failure),
  );
}

function openDelete() {
  hideFormError($("delete-error"));
  fill(
    $("delete-text"),
    h("strong", {}, state.key.name),
    " stops working at once for every client that uses it. Its configuration history stays " +
      "readable through the admin API.",
  );
  openDialog($("delete-dialog"), $("delete-cancel"));
}

async function confirmDelete() {
  const key = state.key;
  await busy(
    $("delete-confirm"),
    async () => {
      await call("DELETE", keyPath(key.id));
      $("delete-dialog").close();
      state.key = null;
      state.revealed = null;
      toast(`Deleted ${key.name}`);
      location.hash = "#/keys";
    },
    (failure) => showFormError($("delete-error"), failure),
  );
}

// ---- routing ----------------------------------------------------------------

async function route() {
  if (!session.token) {
    showSignIn();
    return;
  }
  const hash = location.hash || "#/keys";
  const match = /^#\/keys\/([^/]+)$/.exec(hash);
  if (match) {
    await showKey(decodeURIComponent(match[1]));
    return;
  }
  // Leaving a key's page hides its value again.
  state.key = null;
  state.revealed = null;
  if (hash === "#/help") showView("view-help", "Using keys");
  else await showKeys();
}

function start() {
  setUpDialogs();
  $("create-fields").append(createForm.root);
  $("edit-fields").append(editForm.root);

  onUnauthorized((failure) => {
    session.clear();
    showSignIn(`Signed out: the admin API refused the token (${failure.message}).`);
  });

  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("key-filter").addEventListener("input", renderKeys);
  $("refresh-keys").addEventListener("click", (e) => busy(e.currentTarget, loadKeys));
  $("create-key").addEventListener("click", openCreate);
  $("create-form").addEventListener("submit", submitCreate);

  $("secret-copy").addEventListener("click", () => copy(state.secret.value, $("secret-value")));
  $("secret-download").addEventListener("click", (e) =>
    busy(e.currentTarget, () => download(keyPath(state.secret.id, "download"), "key.key")),
  );
  $("secret-dialog").addEventListener("close", () => {
    state.secret = null;
    $("secret-value").textContent = "";
  });

  $("reveal-key").addEventListener("click", reveal);
  $("copy-key").addEventListener("click", () => copy(state.revealed, $("key-value")));
  $("download-key").addEventListener("click", (e) =>
    busy(e.currentTarget, () => download(keyPath(state.key.id, "download"), "key.key")),
  );
  $("edit-form").addEventListener("submit", saveKey);
  $("edit-form").addEventListener("input", updateDirty);
  $("edit-form").addEventListener("change", updateDirty);
  $("edit-reset").addEventListener("click", () => {
    editForm.load(state.key);
    hideFormError($("edit-error"));
    updateDirty();
  });
  $("refresh-usage").addEventListener("click", (e) =>
    busy(e.currentTarget, async () => {
      const [key] = await Promise.all([call("GET", keyPath(state.key.id)), loadUsage()]);
      state.key = key;
      renderKey();
    }),
  );
  $("open-history").addEventListener("click", openHistory);
  $("open-rotate").addEventListener("click", openRotate);
  $("rotate-form").addEventListener("submit", submitRotate);
  $("open-delete").addEventListener("click", openDelete);
  $("delete-confirm").addEventListener("click", confirmDelete);

  let width = 0;
  new ResizeObserver(() => {
    const now = $("usage-chart").clientWidth;
    if (now && now !== width && state.usage.length) {
      width = now;
      drawUsage($("usage-chart"), state.usage, usageSummary(state.usage));
    }
  }).observe($("usage-chart"));

  window.addEventListener("hashchange", route);
  route();
}

start();
