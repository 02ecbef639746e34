// Small DOM helpers: elements are built with text nodes, never from HTML strings.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined || child === "") continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Items joined by ", ", each a list of nodes; a name goes in its own <bdi>, so a right-to-left
// override in one cannot turn the others (or the labels around them) around.
export function listed(items) {
  return items.flatMap((item, n) => (n ? [", ", ...item] : item));
}

export function timeOf(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleTimeString();
}

export function table(headings, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows),
  );
}
