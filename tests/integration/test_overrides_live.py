"""Instance attributes the fenced overrides rely on exist on live eventsourcing objects."""

from __future__ import annotations

from eventsourcing.projection import ApplicationSubscription

from ledger.application import Ledger
from ledger.overrides.storage import RELIED_ON_INSTANCES

APPLICATION_SUBSCRIPTION = "eventsourcing.projection.ApplicationSubscription"


def test_live_subscription_has_what_the_batching_runner_reads(ledger: Ledger) -> None:
    subscription = ledger.recorder.subscribe(gt=0)
    try:
        for owner, attribute in RELIED_ON_INSTANCES:
            if owner.endswith("Subscription") and owner != APPLICATION_SUBSCRIPTION:
                assert hasattr(subscription, attribute), f"{owner}.{attribute}"
    finally:
        subscription.stop()


def test_live_application_subscription_has_what_the_batching_runner_reads(ledger: Ledger) -> None:
    subscription = ApplicationSubscription(ledger, gt=0)
    try:
        relied_on = [a for owner, a in RELIED_ON_INSTANCES if owner == APPLICATION_SUBSCRIPTION]
        assert relied_on
        for attribute in relied_on:
            assert hasattr(subscription, attribute), f"{APPLICATION_SUBSCRIPTION}.{attribute}"
    finally:
        subscription.stop()
