// Open positions (by user and strategy), closed trades and users, kept up to date by events.

import { el, listed, table, timeOf } from "./dom.js";
import { signed } from "./pnl.js";

const MAX_TRADES = 200;

// Calls `draw` once after a burst of changes.
function debounced(draw) {
  let timer = null;
  return () => {
    if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        draw();
      }, 30);
    }
  };
}

function keyOf(p) {
  return JSON.stringify([p.user, p.strategy, p.instrument]);
}

function grouped(items, name) {
  const groups = new Map();
  for (const item of items) {
    if (!groups.has(item[name])) groups.set(item[name], []);
    groups.get(item[name]).push(item);
  }
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export class Positions {
  constructor(root) {
    this.root = root;
    this.open = new Map();
    this.schedule = debounced(() => this.render());
  }

  // One page of GET /positions; `more`: the server holds more than the page.
  load(positions, more = false) {
    this.more = more ? positions.length : 0;
    this.open.clear();
    for (const p of positions) this.open.set(keyOf(p), p);
    this.schedule();
  }

  // A `position` event; a close answers the trade it made.
  apply(event) {
    const key = keyOf(event);
    const before = this.open.get(key);
    this.schedule();
    if (event.action === "opened") {
      this.open.set(key, { ...event, opened_at: event.at, entry_price: event.price });
      return null;
    }
    this.open.delete(key);
    return {
      user: event.user,
      strategy: event.strategy,
      instrument: event.instrument,
      buy_order_id: before ? before.order_id : "",
      sell_order_id: event.order_id,
      opened_at: before ? before.opened_at : null,
      closed_at: event.at,
      quantity: event.quantity,
      entry_price: event.entry_price,
      exit_price: event.price,
      realised_pnl: event.realised_pnl,
    };
  }

  render() {
    if (this.open.size === 0) {
      this.root.replaceChildren(el("p", { class: "empty" }, "No open positions."));
      return;
    }
    const sections = grouped([...this.open.values()], "user").map(([user, items]) => {
      const bodies = grouped(items, "strategy").map(([strategy, rows]) => {
        rows.sort((a, b) => (a.instrument < b.instrument ? -1 : 1));
        return el(
          "tbody",
          {},
          ...rows.map((p, i) =>
            el(
              "tr",
              { "data-order-id": p.order_id, "data-user": p.user },
              i === 0 ? el("th", { scope: "rowgroup", rowspan: String(rows.length) }, strategy) : null,
              el("td", {}, p.instrument),
              el("td", { class: "num" }, p.quantity ?? "1"),
              el("td", { class: "num" }, p.entry_price ?? "–"),
              el("td", {}, el("code", {}, p.order_id)),
              el("td", {}, timeOf(p.opened_at)),
            ),
          ),
        );
      });
      const head = el(
        "thead",
        {},
        el("tr", {}, ...["Strategy", "Instrument", "Qty", "Price", "Order", "Opened"].map((h) => el("th", { scope: "col" }, h))),
      );
      return el("section", { class: "group", "data-user": user }, el("h3", {}, user), el("table", {}, head, ...bodies));
    });
    const note = this.more
      ? el("p", { class: "note", id: "positions-more" }, `More than ${this.more} open positions: the first ${this.more} are shown; filter by user, strategy or instrument to see the others.`)
      : null;
    this.root.replaceChildren(...(note ? [note] : []), ...sections);
  }
}

export class Trades {
  constructor(root) {
    this.root = root;
    this.list = []; // newest first
    this.seen = new Set();
    this.schedule = debounced(() => this.render());
  }

  clear() {
    this.list = [];
    this.seen.clear();
    this.schedule();
  }

  // Trades newest first (as GET /trades?newest_first=true answers); dupes are dropped.
  load(trades) {
    for (const trade of trades) this.add(trade, false);
    this.schedule();
  }

  add(trade, newest = true) {
    const key = JSON.stringify([trade.user, trade.strategy, trade.instrument, trade.sell_order_id]);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (newest) this.list.unshift(trade);
    else this.list.push(trade);
    if (this.list.length > MAX_TRADES) this.list.length = MAX_TRADES;
    this.schedule();
  }

  render() {
    if (this.list.length === 0) {
      this.root.replaceChildren(el("p", { class: "empty" }, "No closed trades."));
      return;
    }
    const rows = this.list.map((t) =>
      el(
        "tr",
        { "data-order-id": t.sell_order_id, "data-user": t.user },
        el("td", {}, t.user),
        el("td", {}, el("bdi", {}, t.strategy), " ", el("bdi", {}, t.instrument)),
        el("td", { class: "num" }, t.quantity ?? "1"),
        el("td", { class: "num" }, `${t.entry_price ?? "?"} → ${t.exit_price ?? "?"}`),
        el("td", { class: "num" }, signed(t.realised_pnl)),
        el("td", {}, el("code", {}, t.buy_order_id), " → ", el("code", {}, t.sell_order_id)),
        el("td", {}, timeOf(t.closed_at)),
      ),
    );
    const headings = ["User", "Book", "Qty", "Price in → out", "P&L", "Buy → sell", "Closed"];
    this.root.replaceChildren(table(headings, rows));
  }
}

// One book of GET /users: its instrument list, or {"instruments", "multiplier"} when scaled.
export function book(entry) {
  return Array.isArray(entry) ? { instruments: entry, multiplier: "1" } : entry;
}

// GET /users: {"User": {"STRATEGY_A": ["ACC", ...]}}, shown through the filters.
export function renderUsers(root, profiles, filters) {
  const users = Object.keys(profiles)
    .filter((user) => !filters.user || user === filters.user)
    .sort();
  const items = [];
  for (const user of users) {
    const strategies = Object.entries(profiles[user])
      .map(([strategy, entry]) => [strategy, book(entry)])
      .filter(([strategy]) => !filters.strategy || strategy === filters.strategy)
      .filter(([, b]) => !filters.instrument || b.instruments.includes(filters.instrument))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    if (strategies.length === 0 && (filters.strategy || filters.instrument)) continue;
    items.push(
      el(
        "li",
        { "data-user": user },
        el("strong", {}, el("bdi", {}, user)),
        el(
          "ul",
          {},
          ...strategies.map(([strategy, b]) =>
            el(
              "li",
              {},
              el("span", { class: "mono" }, el("bdi", {}, strategy)),
              b.multiplier === "1" ? "" : ` ×${b.multiplier}`,
              ": ",
              ...(b.instruments.length ? listed(b.instruments.map((i) => [el("bdi", {}, i)])) : ["(none)"]),
            ),
          ),
        ),
      ),
    );
  }
  root.replaceChildren(items.length ? el("ul", { class: "users-list" }, ...items) : el("p", { class: "empty" }, "No users."));
}
