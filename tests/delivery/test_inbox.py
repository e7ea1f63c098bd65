"""Inbox and prefs on every metadata adapter (SQLite file, DynamoDB on moto)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from stratum.delivery.inbox import Inbox, MuteHours, Prefs
from stratum.errors import BadRequest, NotFound
from stratum.events import Event, new_event
from stratum.storage.metadata import MetadataStore
from stratum.storage.sqlite import SqliteMetadataStore

from .conftest import Clock


@pytest.fixture(params=["sqlite", pytest.param("dynamo", marks=pytest.mark.aws)])
def meta(request: pytest.FixtureRequest, tmp_path):
    if request.param == "sqlite":
        store: MetadataStore = SqliteMetadataStore(tmp_path / "meta.db")
    else:
        store = request.getfixturevalue("dynamo_store")
    yield store
    store.close()


@pytest.fixture
def inbox(meta: MetadataStore) -> tuple[Inbox, list[Event], Clock]:
    published: list[Event] = []
    clock = Clock()
    return Inbox(meta, published.append, clock=clock), published, clock


def fired(ws: str = "ws1", monitor: str = "mon_1", **kw) -> Event:
    return new_event("monitor.fired", ws, subject={"monitor_id": monitor}, data={"message": "yield 81.2% < 90%"}, **kw)


def test_event_becomes_one_notification_and_notification_new(inbox) -> None:
    box, published, _ = inbox
    ev = fired()
    n = box.on_event(ev)
    assert n is not None and n.kind == "monitor.fired" and n.title == "Monitor fired: monitor_id mon_1"
    assert n.body == "yield 81.2% < 90%" and n.subject == {"monitor_id": "mon_1"} and n.event_id == ev.id
    assert box.on_event(ev) is None  # the same event again (at-least-once source): nothing new
    assert [(e.kind, e.subject["notification_id"], e.id) for e in published] == [
        ("notification.new", n.id, f"evt_{n.id}")
    ]
    assert box.on_event(new_event("job.succeeded", "ws1", subject={"job_id": "j"})) is None  # not in prefs.kinds
    items, cursor = box.list("ws1")
    assert [i.id for i in items] == [n.id] and cursor is None
    assert box.list("ws2") == ([], None)  # another workspace sees nothing


def test_filters_pagination_read_dismiss(inbox) -> None:
    box, _, clock = inbox
    ids = []
    for i in range(7):
        ev = fired(monitor=f"m{i}") if i % 2 == 0 else new_event("job.failed", "ws1", subject={"job_id": f"j{i}"})
        ids.append(box.on_event(ev).id)
        clock.advance(minutes=10)
    newest_first = list(reversed(ids))
    got, cursor, pages = [], None, 0
    while True:
        items, cursor = box.list("ws1", limit=3, cursor=cursor)
        got += [i.id for i in items]
        pages += 1
        if cursor is None:
            break
    assert got == newest_first and pages == 3
    kinds, _ = box.list("ws1", kind="job.failed", limit=2)
    assert [i.id for i in kinds] == [ids[5], ids[3]]
    since = clock.start + timedelta(minutes=40)
    assert [i.id for i in box.list("ws1", since=since)[0]] == [ids[6], ids[5], ids[4]]
    with pytest.raises(BadRequest):
        box.list("ws1", since=datetime(2026, 3, 2))
    read = box.mark_read("ws1", ids[0])
    assert read.read_at == clock.now
    assert ids[0] not in [i.id for i in box.list("ws1", unread=True, limit=100)[0]]
    assert len(box.list("ws1", unread=True, limit=100)[0]) == 6
    with pytest.raises(NotFound):
        box.mark_read("ws2", ids[1])  # another workspace's id is unknown here
    assert box.mark_all_read("ws1") == 6
    assert box.list("ws1", unread=True)[0] == []
    box.dismiss("ws1", ids[2])
    assert ids[2] not in [i.id for i in box.list("ws1", limit=100)[0]]
    with pytest.raises(NotFound):
        box.dismiss("ws1", ids[2])


def test_prefs_round_trip_and_validation(inbox) -> None:
    box, _, _ = inbox
    assert box.prefs("ws1") == Prefs()
    p = Prefs(
        digest="hourly",
        email_to=["qa@example.com"],
        mute=MuteHours(start=time(22), end=time(7), timezone="Europe/Berlin"),
        kinds=["monitor.fired"],
    )
    box.set_prefs("ws1", p)
    assert box.prefs("ws1") == p and box.prefs("ws2") == Prefs()
    with pytest.raises(ValueError, match="needs at least one address"):
        Prefs(digest="daily")
    with pytest.raises(ValueError, match="unknown time zone"):
        MuteHours(start=time(1), end=time(2), timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown event kinds"):
        Prefs(kinds=["monitor.exploded"])


def test_mute_hours_cross_midnight_in_their_time_zone() -> None:
    m = MuteHours(start=time(22), end=time(7), timezone="Europe/Berlin")  # UTC+1 in March 2026 (before DST)
    at = datetime(2026, 3, 2, tzinfo=UTC)
    assert [h for h in range(24) if m.active(at + timedelta(hours=h))] == [0, 1, 2, 3, 4, 5, 21, 22, 23]
