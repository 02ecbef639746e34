// Orders per second (accepted vs rejected) over the last minutes, drawn on a <canvas>.

const WINDOW = 300; // seconds shown

export class Rate {
  constructor(canvas) {
    this.canvas = canvas;
    this.seen = []; // [time ms, accepted?]
  }

  clear() {
    this.seen = [];
  }

  record(order) {
    const at = Date.parse(order.received_at);
    if (!Number.isNaN(at)) this.seen.push([at, order.RESPONSE === "ACCEPTED"]);
  }

  prune(now) {
    const oldest = now - WINDOW * 1000;
    if (this.seen.length && this.seen[0][0] >= oldest) return;
    this.seen = this.seen.filter(([at]) => at >= oldest);
  }

  perMinute(now = Date.now()) {
    const since = now - 60_000;
    return this.seen.filter(([at]) => at >= since && at <= now + 5000).length;
  }

  draw(now = Date.now()) {
    this.prune(now);
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const accepted = new Array(WINDOW).fill(0);
    const rejected = new Array(WINDOW).fill(0);
    const end = Math.floor(now / 1000);
    for (const [at, ok] of this.seen) {
      const slot = WINDOW - 1 - (end - Math.floor(at / 1000));
      if (slot < 0 || slot >= WINDOW) continue;
      (ok ? accepted : rejected)[slot] += 1;
    }
    let top = 1;
    for (let i = 0; i < WINDOW; i += 1) top = Math.max(top, accepted[i] + rejected[i]);
    const styles = getComputedStyle(document.documentElement);
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    const pad = 14 * ratio;
    const bar = width / WINDOW;
    const scale = (height - pad) / top;
    context.fillStyle = styles.getPropertyValue("--accepted").trim() || "green";
    for (let i = 0; i < WINDOW; i += 1) {
      const h = accepted[i] * scale;
      if (h) context.fillRect(i * bar, height - h, Math.max(bar, 1), h);
    }
    context.fillStyle = styles.getPropertyValue("--rejected").trim() || "red";
    for (let i = 0; i < WINDOW; i += 1) {
      const below = accepted[i] * scale;
      const h = rejected[i] * scale;
      if (h) context.fillRect(i * bar, height - below - h, Math.max(bar, 1), h);
    }
    context.fillStyle = styles.getPropertyValue("--muted").trim() || "gray";
    context.font = `${11 * ratio}px system-ui, sans-serif`;
    context.textBaseline = "top";
    context.textAlign = "left";
    context.fillText(`max ${top}/s`, 4 * ratio, 2 * ratio);
    const minutes = WINDOW / 60;
    context.textAlign = "right";
    context.fillText(`−${minutes} min … now`, width - 4 * ratio, 2 * ratio);
    canvas.setAttribute(
      "aria-label",
      `Orders per second over the last ${minutes} minutes: ${this.perMinute(now)} in the last minute`,
    );
  }
}
