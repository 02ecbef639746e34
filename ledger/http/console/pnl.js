// Realised P&L per user and per strategy (GET /pnl), loaded again when a position closes.

import { Unauthorized, readAt } from "./api.js";
import { el, table } from "./dom.js";

const AGAIN = 300; // ms: a burst of closes loads the P&L once

// "+12.5" / "-3" / "0": the sign shown, and a class to colour it.
export function signed(value) {
  if (value === null || value === undefined) return el("span", { class: "muted" }, "n/a");
  const negative = value.startsWith("-");
  const zero = /^-?0(\.0*)?$/.test(value);
  const name = zero ? "flat" : negative ? "loss" : "gain";
  return el("span", { class: `pnl ${name}` }, zero || negative ? value : `+${value}`);
}

function lines(rows, name, heading) {
  return table(
    [heading, "Realised P&L", "Trades", "Won", "Lost", "No price"],
    rows.map((r) =>
      el(
        "tr",
        { [`data-${name}`]: r[name] },
        el("td", {}, r[name]),
        el("td", { class: "num" }, signed(r.realised_pnl)),
        el("td", { class: "num" }, String(r.trades)),
        el("td", { class: "num" }, String(r.winners)),
        el("td", { class: "num" }, String(r.losers)),
        el("td", { class: "num" }, String(r.unpriced)),
      ),
    ),
  );
}

export class PnlPanel {
  constructor(root, onAuth) {
    this.root = root;
    this.onAuth = onAuth;
    this.filters = {};
    this.generation = 0;
    this.timer = null;
  }

  // Load for these filters, as of `sequence` at least (null: whatever is projected).
  async load(filters, sequence) {
    this.filters = filters;
    this.generation += 1;
    const generation = this.generation;
    try {
      const body = await readAt("pnl", filters, sequence);
      if (generation === this.generation) this.render(body);
    } catch (failure) {
      if (failure instanceof Unauthorized) this.onAuth();
      // Otherwise the last figures stay; the next close loads again.
    }
  }

  // A position closed at `sequence`: load again, once for a burst.
  closed(sequence) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(this.filters, sequence), AGAIN);
  }

  render(body) {
    if (body.total.trades === 0) {
      this.root.replaceChildren(el("p", { class: "empty" }, "No closed trades."));
      return;
    }
    const t = body.total;
    this.root.replaceChildren(
      el(
        "p",
        { class: "pnl-total" },
        "Total ",
        signed(t.realised_pnl),
        ` over ${t.trades} trades: ${t.winners} won, ${t.losers} lost`,
        t.unpriced ? `, ${t.unpriced} without a price (not counted)` : "",
      ),
      el("h3", {}, "By user"),
      lines(body.by_user, "user", "User"),
      el("h3", {}, "By strategy"),
      lines(body.by_strategy, "strategy", "Strategy"),
    );
  }
}
