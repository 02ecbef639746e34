// Server-Sent Events over fetch(): EventSource cannot send the Authorization header.
// Reconnects by itself and resumes after the last event id it saw (Last-Event-ID).

import { headers } from "./api.js";

const MAX_DELAY = 5000; // ms between attempts, at most

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class EventStream {
  // url(): the stream's URL; onEvent(type, data, id); onState(state, detail).
  constructor({ url, lastId, onEvent, onState }) {
    this.url = url;
    this.lastId = lastId === null || lastId === undefined ? null : String(lastId);
    this.onEvent = onEvent;
    this.onState = onState;
    this.retry = 1000;
    this.controller = new AbortController();
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.controller.abort();
  }

  async run() {
    const signal = this.controller.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (this.lastId !== null) extra["Last-Event-ID"] = this.lastId;
        const response = await fetch(this.url(), { headers: headers(extra), signal, cache: "no-store" });
        if (response.status === 401) {
          this.onState("unauthorized");
          return;
        }
        if (response.ok && response.body) {
          this.onState("live");
          failures = 0;
          await this.read(response.body, signal);
        } else {
          this.onState("reconnecting", `HTTP ${response.status}`);
        }
      } catch (failure) {
        if (signal.aborted) return;
        // A network error or the server going away mid-stream: try again below.
      }
      if (signal.aborted) return;
      failures += 1;
      const delay = Math.min(this.retry * 2 ** Math.max(0, failures - 1), MAX_DELAY);
      this.onState("reconnecting", delay);
      await pause(delay, signal);
    }
  }

  // The event-stream format (HTML Living Standard, 9.2.6), line by line.
  async read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
    let buffer = "";
    let event = { type: "", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let start = 0;
      for (;;) {
        const match = /\r\n|\r|\n/g;
        match.lastIndex = start;
        const found = match.exec(buffer);
        // A "\r" at the end may be the first half of "\r\n": wait for the next chunk.
        if (!found || (found[0] === "\r" && found.index === buffer.length - 1)) break;
        const line = buffer.slice(start, found.index);
        start = found.index + found[0].length;
        if (line === "") {
          this.dispatch(event);
          event = { type: "", data: [], id: null };
        } else if (!line.startsWith(":")) {
          this.field(event, line);
        }
      }
      buffer = buffer.slice(start);
    }
  }

  field(event, line) {
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") event.type = value;
    else if (name === "data") event.data.push(value);
    else if (name === "id" && !value.includes("\0")) event.id = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch(event) {
    if (event.id !== null) this.lastId = event.id;
    if (event.data.length === 0) return;
    let data;
    try {
      data = JSON.parse(event.data.join("\n"));
    } catch {
      return; // not ours to show
    }
    try {
      this.onEvent(event.type || "message", data, event.id);
    } catch (failure) {
      reportError(failure); // a bug in the page: visible, but the stream goes on
    }
  }
}
