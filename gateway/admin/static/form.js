// The key form, used by the create dialog and the key detail view. It holds no
// rules of its own: the admin API validates, and its messages are shown inline.

import { fromLocalInput, h, toLocalInput, utcOffset, zoneName } from "./dom.js";

export const OPERATIONS = [
  ["get", "Get Shares", "GET"],
  ["list", "List Shares", "LIST"],
  ["create", "Create Shares", "CREATE"],
  ["update", "Update Shares", "UPDATE"],
  ["delete", "Delete Shares", "DELETE"],
];

export const FIELD_LABELS = {
  name: "Key Name",
  permissions: "Permissions",
  admin: "Admin",
  notValidBefore: "Not valid before",
  notValidAfter: "Not valid after",
  allowedIps: "Allowed IPs",
  description: "Description",
  rateLimit: "Rate limit",
  maskedValue: "Key value",
  previousValidUntil: "Previous value valid until",
};

const NAME_MAX = 40;
const DESCRIPTION_MAX = 4000;
const RATE_REQUESTS_MAX = 1000000;
const RATE_PER_SECONDS_MAX = 86400;

/** A rate limit for people: "100 requests per 60 s". */
export function rateLimitText(limit) {
  const noun = limit.requests === 1 ? "request" : "requests";
  return `${limit.requests} ${noun} per ${limit.perSeconds} s`;
}

/** The two rate limit inputs as the API takes them: both empty is no limit (null). */
function rateLimitValue(requestsText, perSecondsText) {
  const number = (text) => (text.trim() === "" ? undefined : Number(text));
  const requests = number(requestsText);
  const perSeconds = number(perSecondsText);
  if (requests === undefined && perSeconds === undefined) return null;
  // A half-filled pair goes as it is: the API names the missing side.
  return { requests, perSeconds };
}

/** Allowed IPs as typed (one a line or comma-separated) to the list the API takes. */
export function parseIpList(text) {
  return text
    .split(/[\n,]/)
    .map((entry) => entry.trim())
    .filter(Boolean);
}

function counted(control, max) {
  const counter = h("span", { class: "counter", "aria-hidden": "true" });
  const update = () => {
    counter.textContent = `${control.value.length}/${max}`;
    counter.classList.toggle("counter-full", control.value.length >= max);
  };
  control.addEventListener("input", update);
  update();
  return { counter, update };
}

/** Build a key form whose control ids start with `prefix`. */
export function keyForm(prefix, { wide = false } = {}) {
  const id = (name) => `${prefix}-${name}`;
  const errors = {};
  const errorSlot = (field) => {
    errors[field] = h("p", { class: "field-error", id: id(`${field}-error`), hidden: true });
    return errors[field];
  };

  const name = h("input", {
    id: id("name"),
    type: "text",
    maxlength: NAME_MAX,
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": `${id("name-error")} ${id("name-count")}`,
  });
  const nameCount = counted(name, NAME_MAX);
  nameCount.counter.id = id("name-count");

  const switches = {};
  const switchRow = (key, label, tag, hint) => {
    const input = h("input", { id: id(`perm-${key}`), type: "checkbox", role: "switch" });
    input.classList.add("switch");
    switches[key] = input;
    return h(
      "div",
      { class: "switch-row" },
      input,
      h("label", { for: input.id }, label),
      tag ? h("span", { class: "op-tag", "aria-hidden": "true" }, tag) : null,
      hint ? h("span", { class: "switch-hint" }, hint) : null,
    );
  };
  const permissionRows = OPERATIONS.map(([key, label, tag]) => switchRow(key, label, tag));
  const admin = h("input", {
    id: id("admin"),
    type: "checkbox",
    role: "switch",
    "aria-describedby": id("admin-hint"),
  });
  admin.classList.add("switch");

  const offset = `${utcOffset()}${zoneName() ? `, ${zoneName()}` : ""}`;
  const moment = (field, label) => {
    const input = h("input", {
      id: id(field),
      type: "datetime-local",
      "aria-describedby": `${id(`${field}-error`)} ${id("window-hint")}`,
    });
    const clear = h("button", {
      type: "button",
      class: "btn btn-ghost btn-small",
      "aria-label": `Clear ${label}`,
      text: "Clear",
      onclick: () => {
        input.value = "";
        input.dispatchEvent(new Event("input", { bubbles: true }));
        input.focus();
      },
    });
    const wrapper = h(
      "div",
      { class: "field" },
      h("label", { for: input.id }, label),
      h("div", { class: "input-with-action" }, input, clear),
      errorSlot(field),
    );
    return { input, field: wrapper };
  };
  const before = moment("notValidBefore", "Not valid before");
  const after = moment("notValidAfter", "Not valid after");

  const ips = h("textarea", {
    id: id("allowedIps"),
    rows: 3,
    spellcheck: "false",
    class: "mono",
    "aria-describedby": `${id("allowedIps-error")} ${id("allowedIps-hint")}`,
  });
  ips.placeholder = "10.0.0.0/8\n192.168.1.10-192.168.1.20\n2001:db8::1";

  const description = h("textarea", {
    id: id("description"),
    rows: 3,
    maxlength: DESCRIPTION_MAX,
    "aria-describedby": `${id("description-error")} ${id("description-count")}`,
  });
  const descriptionCount = counted(description, DESCRIPTION_MAX);
  descriptionCount.counter.id = id("description-count");

  const rateInput = (field, label, max) => {
    const input = h("input", {
      id: id(field),
      type: "number",
      min: 1,
      max,
      step: 1,
      inputmode: "numeric",
      "aria-describedby": `${id("rateLimit-error")} ${id("rateLimit-hint")}`,
    });
    const wrapper = h("div", { class: "field" }, h("label", { for: input.id }, label), input);
    return { input, field: wrapper };
  };
  const rateRequests = rateInput("rateRequests", "Requests", RATE_REQUESTS_MAX);
  const ratePerSeconds = rateInput("ratePerSeconds", "Window (seconds)", RATE_PER_SECONDS_MAX);

  const nameSection = h(
    "div",
    { class: "form-section section-name" },
    h(
      "div",
      { class: "field" },
      h(
        "div",
        { class: "label-row" },
        h("label", { for: name.id }, "Key Name"),
        nameCount.counter,
      ),
      name,
      errorSlot("name"),
    ),
  );
  const permissionSection = h(
    "fieldset",
    { class: "form-section section-permissions" },
    h("legend", {}, "Permissions"),
    h("div", { class: "switch-list" }, permissionRows),
    h(
      "div",
      { class: "switch-row switch-row-admin" },
      admin,
      h("label", { for: admin.id }, "Admin (may list all shares)"),
    ),
    h(
      "p",
      { class: "hint", id: id("admin-hint") },
      "An admin key may LIST without contents or spaceKeys.",
    ),
    errorSlot("permissions"),
    errorSlot("admin"),
  );
  const windowSection = h(
    "fieldset",
    { class: "form-section section-window" },
    h("legend", {}, "Validity"),
    h("div", { class: "field-pair" }, before.field, after.field),
    h(
      "p",
      { class: "hint", id: id("window-hint") },
      `Local time (${offset}). Empty means no limit.`,
    ),
  );
  const rateSection = h(
    "fieldset",
    { class: "form-section section-rate" },
    h("legend", {}, "Rate limit"),
    h("div", { class: "field-pair rate-pair" }, rateRequests.field, ratePerSeconds.field),
    h(
      "p",
      { class: "hint", id: id("rateLimit-hint") },
      "At most this many requests go upstream in any window of this many seconds; " +
        "more get 429. Both empty means no limit.",
    ),
    errorSlot("rateLimit"),
  );
  const ipSection = h(
    "div",
    { class: "form-section section-ips" },
    h(
      "div",
      { class: "field" },
      h("label", { for: ips.id }, "Allowed IPs"),
      ips,
      h(
        "p",
        { class: "hint", id: id("allowedIps-hint") },
        "One per line or comma-separated: addresses, CIDR blocks and ranges a-b, " +
          "IPv4 or IPv6. Empty allows any address.",
      ),
      errorSlot("allowedIps"),
    ),
  );
  const descriptionSection = h(
    "div",
    { class: "form-section section-description" },
    h(
      "div",
      { class: "field" },
      h(
        "div",
        { class: "label-row" },
        h("label", { for: description.id }, "Description"),
        descriptionCount.counter,
      ),
      description,
      errorSlot("description"),
    ),
  );
  // Two columns in the detail view; one after the other in the dialog and on narrow windows.
  const root = h(
    "div",
    { class: wide ? "key-form key-form-wide" : "key-form" },
    h("div", { class: "form-column" }, nameSection, permissionSection),
    h("div", { class: "form-column" }, windowSection, rateSection, ipSection, descriptionSection),
  );

  const controls = {
    name,
    admin,
    notValidBefore: before.input,
    notValidAfter: after.input,
    allowedIps: ips,
    description,
  };
  const rateControls = { requests: rateRequests.input, perSeconds: ratePerSeconds.input };

  /** Every control's present value, to tell what changed since `load`. */
  const state = () => ({
    name: name.value,
    permissions: Object.fromEntries(OPERATIONS.map(([op]) => [op, switches[op].checked])),
    admin: admin.checked,
    notValidBefore: before.input.value,
    notValidAfter: after.input.value,
    allowedIps: JSON.stringify(parseIpList(ips.value)),
    description: description.value,
    rateLimit: JSON.stringify(rateLimitValue(rateRequests.input.value, ratePerSeconds.input.value)),
  });
  let initial = state();

  const form = {
    root,

    /** Show a key's fields (or empty ones) and take them as the unchanged state. */
    load(key) {
      name.value = key ? key.name : "";
      for (const [op] of OPERATIONS) switches[op].checked = Boolean(key && key.permissions[op]);
      admin.checked = Boolean(key && key.admin);
      before.input.value = toLocalInput(key && key.notValidBefore);
      after.input.value = toLocalInput(key && key.notValidAfter);
      ips.value = key ? key.allowedIps.join("\n") : "";
      description.value = key ? key.description : "";
      const limit = key && key.rateLimit;
      rateRequests.input.value = limit ? String(limit.requests) : "";
      ratePerSeconds.input.value = limit ? String(limit.perSeconds) : "";
      nameCount.update();
      descriptionCount.update();
      form.clearErrors();
      initial = state();
    },

    /** The whole body for a create request. */
    body() {
      return {
        name: name.value,
        permissions: state().permissions,
        admin: admin.checked,
        notValidBefore: fromLocalInput(before.input.value),
        notValidAfter: fromLocalInput(after.input.value),
        allowedIps: parseIpList(ips.value),
        description: description.value,
        rateLimit: rateLimitValue(rateRequests.input.value, ratePerSeconds.input.value),
      };
    },

    /** Only the fields changed since `load`, for a PATCH; permissions only the changed ones. */
    changes() {
      const now = state();
      const full = form.body();
      const patch = {};
      for (const field of Object.keys(now)) {
        if (field === "permissions") {
          const changed = OPERATIONS.map(([op]) => op).filter(
            (op) => now.permissions[op] !== initial.permissions[op],
          );
          if (changed.length) {
            patch.permissions = Object.fromEntries(changed.map((op) => [op, now.permissions[op]]));
          }
        } else if (now[field] !== initial[field]) {
          patch[field] = full[field];
        }
      }
      return patch;
    },

    dirty() {
      return Object.keys(form.changes()).length > 0;
    },

    clearErrors() {
      for (const slot of Object.values(errors)) {
        slot.hidden = true;
        slot.textContent = "";
      }
      const all = [controls, switches, rateControls].flatMap((group) => Object.values(group));
      for (const control of all) {
        control.removeAttribute("aria-invalid");
      }
    },

    /** Show an API error beside the field it names; answer false when it names none here. */
    showError(failure) {
      form.clearErrors();
      const field = (failure.field || "").split(/[.[]/)[0];
      const slot = errors[field];
      if (!slot) return false;
      slot.textContent = failure.message;
      slot.hidden = false;
      const part = failure.field.split(".")[1];
      let control = controls[field];
      if (field === "permissions") control = switches[part] || switches.get;
      if (field === "rateLimit") control = rateControls[part] || rateControls.requests;
      if (control) {
        control.setAttribute("aria-invalid", "true");
        control.focus();
      }
      return true;
    },

    focus() {
      name.focus();
    },
  };
  return form;
}
