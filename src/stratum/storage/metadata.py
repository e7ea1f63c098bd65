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

Domain repositories (jobs, lots, keys, ...) are written once on top of this port.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

# expect= values for conditional writes
ANY: Literal["any"] = "any"  # unconditional
ABSENT: Literal["absent"] = "absent"  # the item must not exist (or be expired)
PRESENT: Literal["present"] = "present"  # the item must exist
Expect = int | Literal["any", "absent", "present"]  # an int means: the current version must equal it


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
