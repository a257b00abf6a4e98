// The admin API client: every call carries the admin token as a bearer header.
//
// The token lives in sessionStorage: it survives a reload of this tab and is gone
// when the tab closes. It is never put in a URL, a cookie or localStorage.

const TOKEN_KEY = "share-gateway.admin-token";
export const API = "/admin/api";

/** A refusal from the admin API, carrying its error body. */
export class ApiFailure extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `the admin API answered ${status}`);
    this.status = status;
    this.code = (body && body.error) || "ERROR";
    this.field = (body && body.field) || null;
    this.requestId = (body && body.requestId) || null;
    this.handled = false; // true once the sign-out on 401 has dealt with it
  }
}

/** The gateway could not be reached at all. */
export class NetworkFailure extends Error {}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

let unauthorizedHandler = () => {};

/** Called with the failure when the API refuses the stored token. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

async function send(method, path, { body, token } = {}) {
  const headers = { Authorization: `Bearer ${token ?? session.token ?? ""}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (error) {
    throw new NetworkFailure(`the gateway did not answer (${error.message})`);
  }
  if (!response.ok) {
    let errorBody = null;
    try {
      errorBody = await response.json();
    } catch {
      errorBody = null;
    }
    const failure = new ApiFailure(response.status, errorBody);
    if (response.status === 401 && token === undefined) {
      failure.handled = true;
      unauthorizedHandler(failure);
    }
    throw failure;
  }
  return response;
}

/** Call the admin API and answer its JSON body (null for 204). */
export async function call(method, path, options) {
  const response = await send(method, path, options);
  return response.status === 204 ? null : response.json();
}

/** Fetch an attachment and hand it to the browser as a download. */
export async function download(path, fallbackName) {
  const response = await send("GET", path);
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = match ? match[1] : fallbackName;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  return link.download;
}

export const keyPath = (id, action = "") =>
  `/keys/${encodeURIComponent(id)}${action ? `/${action}` : ""}`;
