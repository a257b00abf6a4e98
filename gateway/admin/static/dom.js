// Building elements and formatting values. Text from the API only ever becomes a
// text node (textContent), never markup: a key named <img onerror=...> shows as text.

/** An element with attributes and children; strings and numbers become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") element.textContent = value;
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (id) => document.getElementById(id);

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const numbers = new Intl.NumberFormat();

/** A moment in the browser's time zone, e.g. "13 Mar 2026, 14:05". */
export function formatMoment(iso, empty = "—") {
  if (!iso) return empty;
  return dateTime.format(new Date(iso));
}

/** A <time> element: local time shown, the exact UTC moment in its tooltip. */
export function timeElement(iso, empty = "—") {
  if (!iso) return h("span", { class: "muted", text: empty });
  return h("time", { datetime: iso, title: iso, text: formatMoment(iso) });
}

export const formatNumber = (n) => numbers.format(n);

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** An ISO moment as a datetime-local value in the browser's time zone. */
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const date = `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const seconds = d.getSeconds() ? `:${pad(d.getSeconds())}` : "";
  return `${date}T${pad(d.getHours())}:${pad(d.getMinutes())}${seconds}`;
}

/** A datetime-local value (local time) as ISO 8601 UTC, or null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const moment = new Date(value);
  if (Number.isNaN(moment.getTime())) return value; // the API names what is wrong
  return moment.toISOString().replace(".000Z", "Z");
}

/** The browser's offset from UTC, e.g. "UTC+02:00", for the given moment. */
export function utcOffset(moment = new Date()) {
  const minutes = -moment.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** The browser's time zone name, when it has one. */
export function zoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
}
