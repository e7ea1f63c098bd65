"""Delivery benchmark: a loopback receiver, the real local worker (SQLite metadata store, thread pool).

- latency: an event published on the in-process bus -> its first delivery attempt arriving (p50/p95);
- throughput: 100 endpoints subscribed to the same kind; deliveries recorded first, then the worker drains
  them: deliveries per second;
- recovery: a receiver that answers 500 for a while then recovers; after deduplication on ``webhook-id`` it
  has every event exactly once.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from stratum.delivery.service import DeliveryService
from stratum.delivery.webhooks import WebhookIn
from stratum.devtools.webhook_receiver import Receiver
from stratum.events import new_event
from stratum.events.local import InProcessBus
from stratum.settings import settings_for
from stratum.storage.sqlite import SqliteMetadataStore


def _service(data: Path, **delivery) -> tuple[DeliveryService, InProcessBus]:
    settings = settings_for(
        data, backend="local", webhook_allow_cidrs="127.0.0.1/32", delivery={"poll_interval_seconds": 0.5, **delivery}
    )
    bus = InProcessBus()
    svc = DeliveryService(SqliteMetadataStore(data / "stratum.db"), settings, bus)
    bus.subscribe(svc.handle)
    return svc, bus


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bench_latency(root: Path, events: int = 100) -> dict:
    rx = Receiver().start()
    svc, bus = _service(root / "latency")
    svc.webhooks.create("bench", WebhookIn(name="r", target_url=rx.url, events=["monitor.fired"]))
    svc.start_worker()
    sent: dict[str, float] = {}
    try:
        for _ in range(events):
            ev = new_event("monitor.fired", "bench", subject={"monitor_id": "m"})
            sent[ev.id] = time.monotonic()
            bus.publish(ev)
            time.sleep(0.02)
        got = rx.wait_for(events, timeout=60)
    finally:
        svc.stop_worker()
        rx.stop()
    lat = [(r.at - sent[r.headers["webhook-id"]]) * 1e3 for r in got]
    return {"events": events, "p50_ms": statistics.median(lat), "p95_ms": _pct(lat, 0.95), "max_ms": max(lat)}


def bench_throughput(root: Path, endpoints: int = 100, events: int = 10) -> dict:
    rx = Receiver().start()
    svc, bus = _service(root / "throughput")
    for i in range(endpoints):
        url = rx.url.replace("/hook", f"/hook/{i}")
        svc.webhooks.create("bench", WebhookIn(name=f"r{i}", target_url=url, events=["monitor.fired"]))
    t0 = time.perf_counter()
    for _ in range(events):
        bus.publish(new_event("monitor.fired", "bench"))
    t_record = time.perf_counter() - t0
    total = endpoints * events
    t1 = time.perf_counter()
    svc.start_worker()
    try:
        rx.wait_for(total, timeout=300)
        t_drain = time.perf_counter() - t1
    finally:
        svc.stop_worker()
        rx.stop()
    return {
        "endpoints": endpoints,
        "deliveries": total,
        "record_per_s": total / t_record,
        "deliveries_per_s": total / t_drain,
        "drain_s": t_drain,
    }


def bench_recovery(root: Path, events: int = 200, outage_s: float = 3.0) -> dict:
    start = time.monotonic()
    accepted: list[str] = []  # webhook-ids answered 200

    def script(n: int, r) -> tuple[int, dict]:
        if time.monotonic() - start < outage_s:
            return 500, {}
        accepted.append(r.headers["webhook-id"])
        return 200, {}

    rx = Receiver(script=script).start()
    svc, bus = _service(root / "recovery", retry_schedule_seconds=[0, 0.5, 1, 1, 1, 1, 1, 1], jitter_fraction=0.1)
    svc.webhooks.create("bench", WebhookIn(name="r", target_url=rx.url, events=["monitor.fired"]))
    svc.start_worker()
    ids = []
    try:
        for _ in range(events):
            ev = new_event("monitor.fired", "bench")
            ids.append(ev.id)
            bus.publish(ev)
        deadline = time.monotonic() + 120
        while len(set(accepted)) < events and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # anything still retrying would arrive now
    finally:
        svc.stop_worker()
        rx.stop()
    unique = {r.headers["webhook-id"] for r in rx.received}
    return {
        "events": events,
        "outage_s": outage_s,
        "requests_received": len(rx.received),
        "unique_after_dedup": len(unique),
        "every_event_exactly_once": unique == set(ids) and len(unique) == events,
        "accepted_twice": len(accepted) - len(set(accepted)),
    }


def bench_delivery() -> dict:
    with tempfile.TemporaryDirectory(prefix="stratum-bench-delivery-") as d:
        root = Path(d)
        return {
            "latency": bench_latency(root),
            "throughput": bench_throughput(root),
            "recovery": bench_recovery(root),
        }


def print_delivery(rep: dict) -> None:
    lat, thr, rec = rep["latency"], rep["throughput"], rep["recovery"]
    print("\nDelivery (loopback receiver, local worker on SQLite)")
    print(f"  event -> first attempt: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms ({lat['events']} events)")
    print(
        f"  {thr['endpoints']} endpoints: {thr['deliveries_per_s']:.0f} deliveries/s drained "
        f"({thr['deliveries']} in {thr['drain_s']:.1f} s); recording {thr['record_per_s']:.0f}/s"
    )
    print(
        f"  fail-then-recover: {rec['requests_received']} requests for {rec['events']} events, "
        f"{rec['unique_after_dedup']} unique webhook-ids; every event exactly once: {rec['every_event_exactly_once']}; "
        f"accepted twice: {rec['accepted_twice']}"
    )
