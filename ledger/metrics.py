"""Prometheus metrics: orders by outcome, batch sizes, commit latency, projection lag."""

from __future__ import annotations

import os
import threading
from collections import Counter as Tally
from collections.abc import Iterator, Sequence

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ledger.domain import Outcome

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
OUTCOMES = (*(o.value for o in Outcome), "UNAVAILABLE")  # UNAVAILABLE: answered 503
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Gauges:
    """A collector for the gauges whose values are only known when the metrics are rendered."""

    def __init__(self) -> None:
        self.sequence: int | None = None
        self.processed: int | None = None
        self.queued = 0

    def describe(self) -> Iterator[Metric]:
        """The families this collector may yield, so the registry can reject duplicate names."""
        yield GaugeMetricFamily("ledger_queued_orders", "Orders waiting for the writer.")
        yield GaugeMetricFamily("ledger_sequence", "Highest sequence in the store.")
        yield GaugeMetricFamily(
            "ledger_projection_lag", "Events the read models are behind the store."
        )

    def collect(self) -> Iterator[Metric]:
        """The gauges, leaving out those the store could not tell us."""
        yield GaugeMetricFamily(
            "ledger_queued_orders", "Orders waiting for the writer.", value=self.queued
        )
        if self.sequence is None:
            return
        yield GaugeMetricFamily(
            "ledger_sequence", "Highest sequence in the store.", value=self.sequence
        )
        if self.processed is not None:
            yield GaugeMetricFamily(
                "ledger_projection_lag",
                "Events the read models are behind the store.",
                value=max(0, self.sequence - self.processed),
            )


class Metrics:
    """The service's metrics in a registry of their own; updated by the writer, read by /metrics."""

    def __init__(self) -> None:
        # One lock keeps a batch's updates and the render-time gauges consistent within a scrape.
        self._lock = threading.Lock()
        # A registry per instance, because several apps share one test process.
        self.registry = CollectorRegistry()
        self._orders = Counter(
            "ledger_orders", "Orders answered, by outcome.", ["outcome"], registry=self.registry
        )
        for outcome in OUTCOMES:
            # Touch each label so every outcome is exposed at 0 before its first order.
            self._orders.labels(outcome)
        self._batch_size = Histogram(
            "ledger_batch_size",
            "Orders per committed batch.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._commit_seconds = Histogram(
            "ledger_commit_seconds",
            "Time to decide and commit one batch.",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self._failed_batches = Counter(
            "ledger_failed_batches", "Batches not committed.", registry=self.registry
        )
        self._gauges = _Gauges()
        self.registry.register(self._gauges)

    def committed(self, stored: Sequence[str], batch_size: int, seconds: float) -> None:
        """A batch of `batch_size` requests committed in `seconds`, newly storing `stored`."""
        with self._lock:
            for outcome, count in Tally(stored).items():
                self._orders.labels(outcome).inc(count)
            self._batch_size.observe(batch_size)
            self._commit_seconds.observe(seconds)

    def failed(self, size: int) -> None:
        """A batch of `size` orders could not be committed (answered 503)."""
        with self._lock:
            self._orders.labels("UNAVAILABLE").inc(size)
            self._failed_batches.inc()

    def render(self, sequence: int | None, processed: int | None, queued: int) -> bytes:
        """The Prometheus text exposition, with the store's position as of this request."""
        with self._lock:
            self._gauges.sequence = sequence
            self._gauges.processed = processed
            self._gauges.queued = queued
            registry = self.registry
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                # Several processes (HTTP workers, writers) each write their counts to files
                # in that directory; the library sums them, dead processes' counts included.
                registry = CollectorRegistry()
                MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
                registry.register(self._gauges)
            return prometheus_client.generate_latest(registry)
