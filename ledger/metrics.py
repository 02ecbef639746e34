"""Prometheus metrics: orders by outcome, batch sizes, commit latency, projection lag."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Sequence

COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus expects."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        """The exposition lines of this histogram."""
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.sum:.6f}")
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """The service's counters; updated by the writer, read by GET /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.orders: Counter[str] = Counter()
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.commit_seconds = Histogram(COMMIT_BUCKETS)
        self.failed_batches = 0

    def committed(self, outcomes: Sequence[str], seconds: float) -> None:
        """A batch committed: its orders' outcomes and how long the commit took."""
        with self._lock:
            self.orders.update(outcomes)
            self.batch_size.observe(len(outcomes))
            self.commit_seconds.observe(seconds)

    def failed(self, size: int) -> None:
        """A batch could not be committed (answered 503)."""
        with self._lock:
            self.failed_batches += 1
            self.orders["UNAVAILABLE"] += size

    def render(self, sequence: int | None, processed: int | None, queued: int) -> str:
        """The Prometheus text exposition."""
        with self._lock:
            lines = [
                "# HELP ledger_orders_total Orders answered, by outcome.",
                "# TYPE ledger_orders_total counter",
            ]
            for outcome in ("ACCEPTED", "REJECTED", "UNAVAILABLE"):
                lines.append(f'ledger_orders_total{{outcome="{outcome}"}} {self.orders[outcome]}')
            lines += [
                "# HELP ledger_batch_size Orders per committed batch.",
                "# TYPE ledger_batch_size histogram",
            ]
            lines += self.batch_size.lines("ledger_batch_size")
            lines += [
                "# HELP ledger_commit_seconds Time to decide and commit one batch.",
                "# TYPE ledger_commit_seconds histogram",
            ]
            lines += self.commit_seconds.lines("ledger_commit_seconds")
            lines += [
                "# HELP ledger_failed_batches_total Batches not committed.",
                "# TYPE ledger_failed_batches_total counter",
                f"ledger_failed_batches_total {self.failed_batches}",
            ]
        lines += [
            "# HELP ledger_queued_orders Orders waiting for the writer.",
            "# TYPE ledger_queued_orders gauge",
            f"ledger_queued_orders {queued}",
        ]
        if sequence is not None:
            lines += [
                "# HELP ledger_sequence Highest sequence in the store.",
                "# TYPE ledger_sequence gauge",
                f"ledger_sequence {sequence}",
            ]
        if sequence is not None and processed is not None:
            lines += [
                "# HELP ledger_projection_lag Events the read models are behind the store.",
                "# TYPE ledger_projection_lag gauge",
                f"ledger_projection_lag {max(0, sequence - processed)}",
            ]
        return "\n".join(lines) + "\n"
