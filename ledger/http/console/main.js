// The console: loads what is there, then follows GET /stream; filters live in the URL.

import { HttpError, Unauthorized, getJSON, hasToken, headers, query, readAt, setToken } from "./api.js";
import { Rate } from "./chart.js";
import { el } from "./dom.js";
import { Positions, Trades, book, renderUsers } from "./panels.js";
import { PnlPanel } from "./pnl.js";
import { EventStream } from "./sse.js";
import { Tape } from "./tape.js";
import { ticket } from "./ticket.js";

const $ = (id) => document.getElementById(id);
const FILTERS = ["user", "strategy", "instrument"];
const HEALTH_EVERY = 2000; // ms
const POSITIONS_SHOWN = 1000; // one page: beyond it the panel says to filter
const RETRY_LOAD = 2000; // ms before loading again when the server did not answer
const LATEST = 100; // orders and trades loaded on opening

const state = { generation: 0, stream: null, retry: null, store: null, lastId: null, lag: null, closing: new Set() };
const tape = new Tape($("tape"), $("tape-empty"), () => needToken());
const positions = new Positions($("positions"));
const trades = new Trades($("trades"));
const rate = new Rate($("chart"));
const pnl = new PnlPanel($("pnl"), () => needToken());

function filters() {
  const search = new URLSearchParams(location.search);
  return Object.fromEntries(FILTERS.map((name) => [name, search.get(name) || ""]));
}

function setConnection(text, name = text) {
  const node = $("connection");
  node.dataset.state = name;
  node.textContent = text;
}

function needToken(message = hasToken() ? "That token was refused." : "") {
  state.generation += 1; // whatever was loading stops
  if (state.stream) state.stream.stop();
  state.stream = null;
  setConnection("token needed");
  $("auth-message").textContent = message;
  $("auth").hidden = false;
  $("token").focus();
}

function options(select, values, current) {
  const all = new Set(values);
  if (current) all.add(current);
  const first = select.options[0];
  select.replaceChildren(first, ...[...all].sort().map((v) => el("option", { value: v }, v)));
  select.value = current;
}

function showProfiles(profiles, current) {
  const strategies = new Set();
  const instruments = new Set();
  for (const books of Object.values(profiles)) {
    for (const [strategy, entry] of Object.entries(books)) {
      strategies.add(strategy);
      for (const name of book(entry).instruments) instruments.add(name);
    }
  }
  const form = $("filters").elements;
  options(form.user, Object.keys(profiles), current.user);
  options(form.strategy, strategies, current.strategy);
  options(form.instrument, instruments, current.instrument);
  $("strategy-names").replaceChildren(...[...strategies].sort().map((v) => el("option", { value: v })));
  $("instrument-names").replaceChildren(...[...instruments].sort().map((v) => el("option", { value: v })));
  renderUsers($("users"), profiles, current);
}

async function refreshUsers() {
  try {
    showProfiles(await getJSON("users"), filters());
  } catch (failure) {
    if (failure instanceof Unauthorized) needToken();
  }
}

function updateHeader() {
  const sequence = Math.max(state.store ?? -1, state.lastId ?? -1);
  $("sequence").textContent = sequence >= 0 ? String(sequence) : "–";
  $("lag").textContent = state.lag === null ? "–" : String(state.lag);
  $("per-minute").textContent = String(rate.perMinute());
  rate.draw();
}

function onEvent(type, data, id) {
  if (id !== null && /^\d+$/.test(id)) state.lastId = Number(id);
  if (type === "order") {
    if (tape.add(data)) rate.record(data);
    if (state.closing.delete(data.order_id)) pnl.closed(data.sequence);
    updateHeader();
  } else if (type === "position") {
    const trade = positions.apply(data);
    if (trade) {
      trades.add(trade);
      // The trades table is written with the SELL's order event, which follows: the P&L is
      // read at that order's sequence.
      state.closing.add(data.order_id);
    }
  } else if (type === "profile") {
    refreshUsers();
  }
}

// Whether a stream event passes a filter the server could not apply (see follow).
function passes(type, data, kept) {
  if (kept.user) {
    const users = type === "order" ? [...data.accepted_for, ...data.rejected_for.map((r) => r.user)] : [data.user];
    if (!users.includes(kept.user)) return false;
  }
  if (kept.strategy && data.strategy !== kept.strategy) return false;
  return !kept.instrument || type === "profile" || data.instrument === kept.instrument;
}

function follow(generation, current, after) {
  // The stream's filters are comma lists: a name with a comma in it is filtered here instead.
  const sent = {};
  const kept = {};
  for (const [name, value] of Object.entries(current)) (value.includes(",") ? kept : sent)[name] = value;
  const url = () => `stream${query({ ...sent, types: "order,position,profile" })}`;
  state.stream = new EventStream({
    url,
    lastId: after,
    onEvent: (type, data, id) => {
      if (generation !== state.generation) return;
      if (passes(type, data, kept)) onEvent(type, data, id);
    },
    onState: (name, detail) => {
      if (generation !== state.generation) return;
      if (name === "unauthorized") needToken();
      else if (name === "live") setConnection("live");
      else setConnection(typeof detail === "number" ? `reconnecting in ${Math.ceil(detail / 1000)} s` : "reconnecting", "reconnecting");
    },
  }).start();
}

// Everything from the start: the store's sequence S, the reads as of S at least, then the
// stream from S on (rows both in a read and in the stream are shown once).
async function reload() {
  state.generation += 1;
  const generation = state.generation;
  clearTimeout(state.retry);
  if (state.stream) state.stream.stop();
  state.stream = null;
  tape.clear();
  state.closing.clear();
  positions.load([]);
  trades.clear();
  rate.clear();
  setConnection("connecting");
  const current = filters();
  try {
    const profiles = await getJSON("users");
    if (generation !== state.generation) return;
    showProfiles(profiles, current);
    let top = null;
    try {
      top = (await getJSON("health")).sequence ?? null;
    } catch (failure) {
      if (!(failure instanceof HttpError)) throw failure;
    }
    const [orders, open, closed] = await Promise.all([
      readAt("orders", { ...current, newest_first: true, limit: LATEST }, top),
      readAt("positions", { ...current, limit: POSITIONS_SHOWN }, top),
      readAt("trades", { ...current, newest_first: true, limit: LATEST }, top),
    ]);
    if (generation !== state.generation) return;
    for (const order of orders.orders) if (tape.add(order)) rate.record(order);
    positions.load(open.positions, open.next !== null);
    trades.load(closed.trades);
    pnl.load(current, top);
    state.lastId = top;
    updateHeader();
    follow(generation, current, top);
  } catch (failure) {
    if (generation !== state.generation) return;
    if (failure instanceof Unauthorized) {
      needToken();
      return;
    }
    setConnection(`offline: ${failure.message}`, "offline");
    state.retry = setTimeout(reload, RETRY_LOAD);
  }
}

async function pollHealth() {
  try {
    const response = await fetch("health", { headers: headers(), cache: "no-store" });
    const health = await response.json();
    state.store = typeof health.sequence === "number" ? health.sequence : state.store;
    const lags = Object.values(health.projections || {}).map((p) => p.lag);
    state.lag = lags.length ? Math.max(...lags) : null;
  } catch {
    state.lag = null; // the server is away; the stream shows it too
  }
  updateHeader();
  setTimeout(pollHealth, HEALTH_EVERY);
}

function applyFilters(values) {
  const search = query(Object.fromEntries(FILTERS.map((name) => [name, values[name]])));
  history.pushState(null, "", search || location.pathname);
  const ticketFields = $("ticket").elements;
  if (values.strategy) ticketFields.STRATEGY.value = values.strategy;
  if (values.instrument) ticketFields.INSTRUMENT.value = values.instrument;
  reload();
}

function start() {
  const form = $("filters");
  form.addEventListener("change", () => {
    applyFilters(Object.fromEntries(FILTERS.map((name) => [name, form.elements[name].value])));
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    applyFilters({});
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  window.addEventListener("popstate", reload);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("token").value);
    $("token").value = "";
    $("auth").hidden = true;
    reload();
  });
  window.addEventListener("pagehide", () => state.stream && state.stream.stop());
  ticket($("ticket"), $("answer"), () => needToken());
  const current = filters();
  if (current.strategy) $("ticket").elements.STRATEGY.value = current.strategy;
  if (current.instrument) $("ticket").elements.INSTRUMENT.value = current.instrument;
  setInterval(updateHeader, 1000);
  reload();
  pollHealth();
}

start();
