// The order ticket: POST /order and show the answer, or the error body's `error`.

import { Unauthorized, newOrderId, postJSON } from "./api.js";
import { el, listed } from "./dom.js";

function describe(answer) {
  const booked = answer.accepted_for.length
    ? listed(answer.accepted_for.map((user) => [el("bdi", {}, user)]))
    : ["nobody"];
  const parts = [
    el("span", { class: "badge" }, answer.RESPONSE),
    " ",
    el("code", { class: "order-id" }, answer.order_id),
    ` at sequence ${answer.sequence}. Booked for: `,
    ...booked,
    ".",
  ];
  if (answer.rejected_for.length) {
    const refused = listed(answer.rejected_for.map((r) => [el("bdi", {}, r.user), ` (${r.reason})`]));
    parts.push(" Refused for: ", ...refused, ".");
  }
  if (answer.reason) parts.push(` Reason: ${answer.reason}.`);
  return parts;
}

export function ticket(form, output, onAuth) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = form.elements;
    const order = {
      STRATEGY: fields.STRATEGY.value,
      INSTRUMENT: fields.INSTRUMENT.value,
      POSITION: fields.POSITION.value,
      ORDER_ID: fields.ORDER_ID.value.trim() || newOrderId(),
    };
    // Sent only when filled in; PRICE as a string, so no digit is lost to a float.
    if (fields.QUANTITY.value.trim()) order.QUANTITY = Number(fields.QUANTITY.value);
    if (fields.PRICE.value.trim()) order.PRICE = fields.PRICE.value.trim();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    output.className = "answer";
    output.replaceChildren(`Sending ${order.ORDER_ID}…`);
    try {
      const { status, body } = await postJSON("order", order);
      if (status === 200 && body) {
        output.className = `answer ${body.RESPONSE === "ACCEPTED" ? "accepted" : "rejected"}`;
        output.replaceChildren(...describe(body));
        fields.ORDER_ID.value = "";
      } else {
        const why = body && body.error ? body.error : `HTTP ${status}`;
        const detail = body && body.fields ? ` ${JSON.stringify(body.fields)}` : "";
        output.className = "answer error";
        output.replaceChildren(`Error ${status}: ${why}${detail}`);
      }
    } catch (failure) {
      output.className = "answer error";
      if (failure instanceof Unauthorized) {
        output.replaceChildren("The token is missing or wrong.");
        onAuth();
      } else {
        output.replaceChildren(`Not sent: ${failure.message}. Send again with ORDER_ID ${order.ORDER_ID}.`);
        fields.ORDER_ID.value = order.ORDER_ID; // a retry must not book twice
      }
    } finally {
      button.disabled = false;
    }
  });
}
