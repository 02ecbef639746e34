// Requests to the ledger: relative URLs (same origin), the token as a header, never in a URL.

const KEY = "ledger-api-token";

export class Unauthorized extends Error {}

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function setToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function hasToken() {
  return Boolean(sessionStorage.getItem(KEY));
}

export function headers(extra = {}) {
  const all = { Accept: "application/json", ...extra };
  const token = sessionStorage.getItem(KEY);
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

// "?a=1&b=2" from an object; empty and null values are left out.
export function query(params = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function body(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export async function getJSON(path, params = {}, signal = undefined) {
  const response = await fetch(path + query(params), { headers: headers(), signal, cache: "no-store" });
  if (response.status === 401) throw new Unauthorized();
  const parsed = await body(response);
  if (!response.ok) throw new HttpError(response.status, parsed);
  return parsed;
}

// POST JSON; answers {status, body} whatever the status, or throws Unauthorized.
export async function postJSON(path, payload) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(payload),
  });
  if (response.status === 401) throw new Unauthorized();
  return { status: response.status, body: await body(response) };
}

// A read that waits for min_sequence, or answers what was projected if that times out (503).
export async function readAt(path, params, sequence, signal) {
  if (sequence === null) return getJSON(path, params, signal);
  try {
    return await getJSON(path, { ...params, min_sequence: sequence }, signal);
  } catch (failure) {
    if (failure instanceof HttpError && failure.status === 503) return getJSON(path, params, signal);
    throw failure;
  }
}

// A random ORDER_ID; crypto.randomUUID only exists in secure contexts (https, localhost).
export function newOrderId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
