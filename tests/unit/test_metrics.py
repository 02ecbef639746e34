"""The Prometheus exposition of Metrics, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from ledger.metrics import CONTENT_TYPE, Metrics

NAMES = {
    "ledger_orders_total",
    "ledger_batch_size_count",
    "ledger_commit_seconds_count",
    "ledger_failed_batches_total",
    "ledger_queued_orders",
    "ledger_sequence",
    "ledger_projection_lag",
}


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by its name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(body: bytes, name: str, **labels: str) -> float:
    return samples(body)[(name, tuple(sorted(labels.items())))]


def test_fresh_metrics_render_every_name_at_zero() -> None:
    body = Metrics().render(0, 0, 0)
    found = samples(body)
    assert not NAMES - {name for name, _ in found}
    for outcome in ("ACCEPTED", "REJECTED", "UNAVAILABLE"):
        assert value(body, "ledger_orders_total", outcome=outcome) == 0
    for name in NAMES - {"ledger_orders_total"}:
        assert value(body, name) == 0
    assert value(body, "ledger_batch_size_sum") == 0
    assert value(body, "ledger_commit_seconds_bucket", le="+Inf") == 0


def test_exposition_keeps_the_exact_series_names() -> None:
    text = Metrics().render(0, 0, 0).decode()
    assert 'ledger_orders_total{outcome="ACCEPTED"} ' in text
    assert 'ledger_orders_total{outcome="REJECTED"} ' in text
    assert 'ledger_orders_total{outcome="UNAVAILABLE"} ' in text
    assert CONTENT_TYPE.startswith("text/plain")


def test_committed_and_failed_batches_are_counted() -> None:
    metrics = Metrics()
    metrics.committed(["ACCEPTED", "REJECTED", "ACCEPTED"], 4, 0.003)
    metrics.failed(2)
    body = metrics.render(10, 7, 3)
    assert value(body, "ledger_orders_total", outcome="ACCEPTED") == 2
    assert value(body, "ledger_orders_total", outcome="REJECTED") == 1
    assert value(body, "ledger_orders_total", outcome="UNAVAILABLE") == 2
    assert value(body, "ledger_failed_batches_total") == 1
    assert value(body, "ledger_batch_size_count") == 1
    assert value(body, "ledger_batch_size_sum") == 4
    assert value(body, "ledger_batch_size_bucket", le="2.0") == 0
    assert value(body, "ledger_batch_size_bucket", le="5.0") == 1
    assert value(body, "ledger_commit_seconds_count") == 1
    assert value(body, "ledger_commit_seconds_bucket", le="0.0025") == 0
    assert value(body, "ledger_commit_seconds_bucket", le="0.005") == 1
    assert value(body, "ledger_commit_seconds_sum") == 0.003


def test_render_reports_the_given_sequence_lag_and_queue() -> None:
    body = Metrics().render(10, 7, 3)
    assert value(body, "ledger_sequence") == 10
    assert value(body, "ledger_projection_lag") == 3
    assert value(body, "ledger_queued_orders") == 3


def test_lag_is_never_negative() -> None:
    assert value(Metrics().render(5, 9, 0), "ledger_projection_lag") == 0


def test_unknown_positions_are_left_out() -> None:
    metrics = Metrics()
    metrics.render(10, 7, 3)  # a later render must not reuse these values
    found = {name for name, _ in samples(metrics.render(None, None, 0))}
    assert "ledger_sequence" not in found
    assert "ledger_projection_lag" not in found
    assert value(metrics.render(None, None, 0), "ledger_queued_orders") == 0
    found = {name for name, _ in samples(metrics.render(10, None, 0))}
    assert "ledger_sequence" in found
    assert "ledger_projection_lag" not in found


def test_instances_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.committed(["ACCEPTED"], 1, 0.001)
    first.failed(3)
    body = second.render(None, None, 0)
    for outcome in ("ACCEPTED", "REJECTED", "UNAVAILABLE"):
        assert value(body, "ledger_orders_total", outcome=outcome) == 0
    assert value(body, "ledger_batch_size_count") == 0
    assert value(body, "ledger_failed_batches_total") == 0
    assert value(first.render(None, None, 0), "ledger_orders_total", outcome="ACCEPTED") == 1


def test_concurrent_updates_are_all_counted() -> None:
    metrics = Metrics()

    def work() -> None:
        for _ in range(500):
            metrics.committed(["ACCEPTED", "REJECTED"], 2, 0.001)
            metrics.failed(1)
            metrics.render(1, 1, 0)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    body = metrics.render(None, None, 0)
    assert value(body, "ledger_orders_total", outcome="ACCEPTED") == 4000
    assert value(body, "ledger_orders_total", outcome="UNAVAILABLE") == 4000
    assert value(body, "ledger_batch_size_sum") == 8000
    assert value(body, "ledger_failed_batches_total") == 4000
