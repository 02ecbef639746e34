// The order tape: newest first, one row per ORDER_ID, each opening to its decisions.

import { Unauthorized, getJSON } from "./api.js";
import { el, timeOf } from "./dom.js";

const MAX_ROWS = 1000; // the oldest rows leave the page beyond this
const DECISIONS_PAGE = 200;

export class Tape {
  constructor(list, empty, onAuth) {
    this.list = list;
    this.empty = empty;
    this.onAuth = onAuth;
    this.rows = new Map(); // order_id -> {order, node}
  }

  clear() {
    this.rows.clear();
    this.list.replaceChildren();
    this.empty.hidden = false;
  }

  orders() {
    return Array.from(this.rows.values(), (row) => row.order);
  }

  // Add an order unless its ORDER_ID is shown already; rows stay in descending sequence.
  add(order) {
    if (this.rows.has(order.order_id)) return false;
    const node = this.render(order);
    let before = null;
    for (const child of this.list.children) {
      if (Number(child.dataset.sequence) < order.sequence) {
        before = child;
        break;
      }
    }
    this.list.insertBefore(node, before);
    this.rows.set(order.order_id, { order, node });
    this.empty.hidden = true;
    while (this.rows.size > MAX_ROWS) {
      const last = this.list.lastElementChild;
      this.rows.delete(last.dataset.orderId);
      last.remove();
    }
    return true;
  }

  render(order) {
    const outcome = order.RESPONSE === "ACCEPTED" ? "accepted" : "rejected";
    const booked = order.accepted_for.length;
    const refused = order.rejected_for.length;
    const counts = order.reason ? order.reason : `${booked} booked · ${refused} refused`;
    const summary = el(
      "summary",
      {},
      el("span", { class: "badge" }, order.RESPONSE),
      " ",
      el("code", { class: "order-id" }, order.order_id),
      " ",
      el("span", { class: "what" }, `${order.position} ${order.quantity ?? 1} ${order.instrument}`),
      el("span", { class: "price" }, order.price ? `@ ${order.price}` : "no price"),
      el("span", { class: "what" }, `· ${order.strategy}`),
      " ",
      el("span", { class: "counts" }, counts),
      " ",
      el("time", { class: "when", datetime: order.received_at || "" }, timeOf(order.received_at)),
    );
    const body = el("div", { class: "decisions" });
    const details = el("details", {}, summary, body);
    details.addEventListener("toggle", () => {
      if (details.open && !body.dataset.loaded) {
        body.dataset.loaded = "1";
        this.decisions(order, body, null);
      }
    });
    return el(
      "li",
      { class: outcome, "data-order-id": order.order_id, "data-sequence": String(order.sequence) },
      details,
    );
  }

  // One page of /decisions into `body`, with a button for the next; the order's own lists
  // if the read fails.
  async decisions(order, body, after) {
    const status = el("p", { class: "empty" }, "loading decisions…");
    body.append(status);
    let page;
    try {
      page = await getJSON("decisions", {
        order_id: order.order_id,
        limit: DECISIONS_PAGE,
        after,
        min_sequence: order.sequence,
      });
    } catch (failure) {
      if (failure instanceof Unauthorized) this.onAuth();
      status.remove();
      body.append(this.fromOrder(order));
      return;
    }
    status.remove();
    if (after === null) {
      body.append(el("p", {}, `Booked for ${page.accepted}, refused for ${page.rejected}.`));
      if (order.reason) body.append(el("p", {}, `Reason: ${order.reason}`));
    }
    body.append(
      el(
        "ul",
        {},
        ...page.decisions.map((d) =>
          el(
            "li",
            {},
            el("bdi", {}, d.user),
            ": ",
            el("span", { class: d.outcome === "ACCEPTED" ? "ok" : "no" }, d.outcome),
            d.reason ? ` ${d.reason}` : "",
          ),
        ),
      ),
    );
    if (page.next !== null && page.next !== undefined) {
      const more = el("button", { type: "button" }, "More decisions");
      more.addEventListener("click", () => {
        more.remove();
        this.decisions(order, body, page.next);
      });
      body.append(more);
    }
  }

  fromOrder(order) {
    return el(
      "ul",
      {},
      ...order.accepted_for.map((user) => el("li", {}, `${user}: `, el("span", { class: "ok" }, "ACCEPTED"))),
      ...order.rejected_for.map((r) =>
        el("li", {}, `${r.user}: `, el("span", { class: "no" }, "REJECTED"), ` ${r.reason}`),
      ),
      ...(order.reason ? [el("li", {}, `Reason: ${order.reason}`)] : []),
    );
  }
}
