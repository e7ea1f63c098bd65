from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stratum.delivery.service import DeliveryService
from stratum.devtools.webhook_receiver import Receiver
from stratum.events.local import InProcessBus
from stratum.settings import settings_for
from stratum.storage.sqlite import SqliteMetadataStore


class Clock:
    def __init__(self) -> None:
        # wall time (receivers check webhook-timestamp against their clock), whole seconds
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.start = self.now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_delivery(tmp_path, clock=None, meta=None, **overrides) -> tuple[DeliveryService, InProcessBus]:
    settings = settings_for(tmp_path / "data", backend="local", webhook_allow_cidrs="127.0.0.1/32", **overrides)
    bus = InProcessBus()
    kw = {"clock": clock} if clock is not None else {}
    svc = DeliveryService(meta or SqliteMetadataStore(tmp_path / "data" / "meta.db"), settings, bus, **kw)
    bus.subscribe(svc.handle)
    return svc, bus
