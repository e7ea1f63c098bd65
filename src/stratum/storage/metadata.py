"""Metadata store port: jobs, lot pointers, workspaces, API keys, rate-limit counters.

A small item store with conditional writes, modelled on DynamoDB's single-table design so that the
DynamoDB adapter is direct and the SQLite adapter (the embedded default) is simple:

- an item is ``(pk, sk) -> data`` with a ``version`` (1 on create, +1 on every put) and an optional
  ``ttl`` (epoch seconds; expired items are invisible to every read even before they are purged);
- up to two secondary indexes per item, ``gsi1`` and ``gsi2``, each a ``(pk, sk)`` pair, queried like
  the table;
- ``put`` / ``delete`` take a condition on the current version; ``transact`` applies several writes
  and checks atomically (all or none);
- ``increment`` is an atomic counter with an optional ceiling (rate limits).

Domain repositories (jobs, lots, keys, ...) are written once on top of this port. The validation rules,
limits and cursor format both adapters share live here too, so adapters never import each other.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from stratum.cursor import decode_cursor, encode_cursor

# expect= values for conditional writes
ANY: Literal["any"] = "any"  # unconditional
ABSENT: Literal["absent"] = "absent"  # the item must not exist (or be expired)
PRESENT: Literal["present"] = "present"  # the item must exist
Expect = int | Literal["any", "absent", "present"]  # an int means: the current version must equal it


MAX_DATA_BYTES = 350_000  # DynamoDB's item limit is 400 KB; keep both adapters to the same budget
MAX_TRANSACT_OPS = 100


class ConditionFailed(Exception):
    """A conditional write found the item in another state. Nothing was written."""


@dataclass(slots=True)
class Item:
    pk: str
    sk: str
    data: dict[str, Any]
    version: int = 0
    ttl: int | None = None
    gsi1: tuple[str, str] | None = None
    gsi2: tuple[str, str] | None = None


@dataclass(slots=True)
class Page:
    items: list[Item]
    cursor: str | None = None  # opaque; pass back to continue; None on the last page


@dataclass(slots=True)
class Put:
    pk: str
    sk: str
    data: dict[str, Any]
    expect: Expect = ANY
    ttl: int | None = None
    gsi1: tuple[str, str] | None = None
    gsi2: tuple[str, str] | None = None


@dataclass(slots=True)
class Delete:
    pk: str
    sk: str
    expect: Expect = ANY


@dataclass(slots=True)
class Check:
    pk: str
    sk: str
    expect: Expect = PRESENT


@dataclass(slots=True)
class TransactResult:
    versions: dict[tuple[str, str], int] = field(default_factory=dict)


class MetadataStore(ABC):
    """Port. Thread-safe; the SQLite adapter is also safe across processes."""

    @abstractmethod
    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None: ...

    @abstractmethod
    def put(
        self,
        pk: str,
        sk: str,
        data: dict[str, Any],
        *,
        expect: Expect = ANY,
        ttl: int | None = None,
        gsi1: tuple[str, str] | None = None,
        gsi2: tuple[str, str] | None = None,
    ) -> Item:
        """Write the whole item; returns it with its new version. Raises ConditionFailed."""

    @abstractmethod
    def delete(self, pk: str, sk: str, *, expect: Expect = ANY) -> None: ...

    @abstractmethod
    def query(
        self,
        pk: str,
        *,
        index: Literal["table", "gsi1", "gsi2"] = "table",
        prefix: str = "",
        start: str | None = None,
        end: str | None = None,
        descending: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Items whose partition key equals ``pk`` (on the table or an index), sort keys ordered
        (descending if asked), filtered by ``prefix`` and the inclusive range [start, end]."""

    @abstractmethod
    def transact(self, ops: list[Put | Delete | Check]) -> TransactResult:
        """All or nothing. Raises ConditionFailed (nothing written) when any expectation fails."""

    @abstractmethod
    def increment(
        self, pk: str, sk: str, *, amount: int = 1, ceiling: int | None = None, ttl: int | None = None
    ) -> int | None:
        """Atomically add ``amount`` to the item's counter (created at 0) and return the new value.
        With a ``ceiling``, the add happens only if the result stays <= ceiling; otherwise nothing
        changes and ``None`` is returned. Counters live beside, not inside, ``data``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


# -- rules both adapters apply ------------------------------------------------------------------------
def now_epoch() -> int:
    return int(time.time())


def check_expect(expect: Expect) -> None:
    if isinstance(expect, bool) or not (expect in (ANY, ABSENT, PRESENT) or isinstance(expect, int)):
        raise ValueError(f"invalid expect={expect!r}: use ANY, ABSENT, PRESENT or a version number")


def check_item_args(pk: str, sk: str, ttl: int | None = None, gsi1: Any = None, gsi2: Any = None) -> None:
    for name, v in (("pk", pk), ("sk", sk)):
        if not isinstance(v, str) or not v:
            raise ValueError(f"{name} must be a non-empty string, got {v!r}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
        raise ValueError(f"ttl must be epoch seconds (int), got {ttl!r}")
    for name, g in (("gsi1", gsi1), ("gsi2", gsi2)):
        if g is not None and (len(g) != 2 or not all(isinstance(x, str) and x for x in g)):
            raise ValueError(f"{name} must be a (pk, sk) pair of non-empty strings, got {g!r}")


def encode_data(data: dict[str, Any]) -> str:
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict, got {type(data).__name__}")
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(text.encode()) > MAX_DATA_BYTES:
        raise ValueError(f"item data is {len(text.encode())} bytes encoded; the limit is {MAX_DATA_BYTES}")
    return text


def check_ops(ops: list[Put | Delete | Check]) -> None:
    if len(ops) > MAX_TRANSACT_OPS:
        raise ValueError(f"a transaction holds at most {MAX_TRANSACT_OPS} operations, got {len(ops)}")
    seen: set[tuple[str, str]] = set()
    for op in ops:
        if not isinstance(op, Put | Delete | Check):
            raise TypeError(f"not a transaction operation: {op!r}")
        if isinstance(op, Put):
            check_item_args(op.pk, op.sk, op.ttl, op.gsi1, op.gsi2)
        else:
            check_item_args(op.pk, op.sk)
        check_expect(op.expect)
        if (op.pk, op.sk) in seen:
            raise ValueError(f"a transaction may touch ({op.pk!r}, {op.sk!r}) only once")
        seen.add((op.pk, op.sk))


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (code point order), or
    None when there is none."""
    p = prefix
    while p:
        c = ord(p[-1])
        if c < 0x10FFFF:
            c += 1
            if 0xD800 <= c <= 0xDFFF:  # surrogates never occur in valid text
                c = 0xE000
            return p[:-1] + chr(c)
        p = p[:-1]
    return None


def encode_query_cursor(index: str, pk: str, descending: bool, position: Any) -> str:
    """The opaque cursor of a ``query`` page: the query it belongs to and the last item's position."""
    return encode_cursor({"i": index, "p": pk, "d": descending, "k": position})


def decode_query_cursor(cursor: str, *, index: str, pk: str, descending: bool) -> Any:
    """The position in a cursor made by :func:`encode_query_cursor` for this same query (else ValueError)."""
    payload = decode_cursor(cursor)
    if payload.get("i") != index or payload.get("p") != pk:
        raise ValueError("cursor does not belong to this query")
    if bool(payload.get("d")) != descending:
        raise ValueError("cursor does not belong to this query (direction)")
    return payload.get("k")
