"""Instance attributes the fenced overrides rely on exist on live eventsourcing objects."""

from __future__ import annotations

from ledger.application import Ledger
from ledger.overrides.storage import RELIED_ON_INSTANCES


def test_live_subscription_has_what_the_batching_runner_reads(ledger: Ledger) -> None:
    subscription = ledger.recorder.subscribe(gt=0)
    try:
        for owner, attribute in RELIED_ON_INSTANCES:
            if owner.endswith("Subscription"):
                assert hasattr(subscription, attribute), f"{owner}.{attribute}"
    finally:
        subscription.stop()
