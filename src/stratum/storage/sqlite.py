"""Metadata store on SQLite (the embedded default).

One table::

    items(pk, sk, data JSON text, version, ttl, n, gsi1pk, gsi1sk, gsi2pk, gsi2sk)  PRIMARY KEY (pk, sk)

with indexes on ``(gsi1pk, gsi1sk)``, ``(gsi2pk, gsi2sk)`` and ``ttl``.

- **Concurrency.** WAL mode and a busy timeout; one connection per thread (``threading.local``; a
  forked child opens its own) so the local server's threads and several CLI processes can share one
  file. Every conditional write, ``transact`` and ``increment`` runs inside ``BEGIN IMMEDIATE``: the
  read of the current state and the write are one serialised transaction, across threads and
  processes. ``path=":memory:"`` uses one shared connection guarded by a lock (unit tests).
- **TTL.** An item whose ``ttl`` (epoch seconds) is in the past (``ttl < now``) is invisible to ``get``
  and ``query`` and counts as absent for conditions; such rows are purged opportunistically (at most
  once a minute per store, inside a write transaction).
- **Semantics shared with the DynamoDB adapter** (the contract tests hold both to them): ``put`` replaces
  the whole item, counter included; ``increment`` on an absent or expired item creates a counter-only
  item (``data == {}``, ``version == 0``); a transaction may touch an item only once and holds at most
  100 operations; keys and index keys are non-empty strings; ``data`` must be a JSON object of at most
  ``MAX_DATA_BYTES`` once encoded; sort keys compare by code point (= UTF-8 byte order, as DynamoDB).
- **Cursors** are opaque (URL-safe base64 of JSON holding the last position seen: ``(sk,)`` on the
  table, ``(index sk, pk, sk)`` on an index). Paging is keyset-based, hence stable under concurrent
  inserts and deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from stratum.storage.metadata import (
    ABSENT,
    ANY,
    PRESENT,
    Check,
    ConditionFailed,
    Delete,
    Expect,
    Item,
    MetadataStore,
    Page,
    Put,
    TransactResult,
    check_item_args,
    check_ops,
    decode_query_cursor,
    encode_data,
    encode_query_cursor,
    now_epoch,
    prefix_successor,
)

PURGE_INTERVAL_SECONDS = 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    pk      TEXT NOT NULL,
    sk      TEXT NOT NULL,
    data    TEXT,
    version INTEGER NOT NULL DEFAULT 0,
    ttl     INTEGER,
    n       INTEGER,
    gsi1pk  TEXT,
    gsi1sk  TEXT,
    gsi2pk  TEXT,
    gsi2sk  TEXT,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (gsi1pk, gsi1sk) WHERE gsi1pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_gsi2 ON items (gsi2pk, gsi2sk) WHERE gsi2pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_ttl ON items (ttl) WHERE ttl IS NOT NULL;
"""

_COLS = "pk, sk, data, version, ttl, gsi1pk, gsi1sk, gsi2pk, gsi2sk"


class _Connection(sqlite3.Connection):
    """A connection that remembers its process and can be weakly referenced."""

    owner_pid: int = 0


_INHERITED: list[sqlite3.Connection] = []  # connections inherited by a forked child, never touched


def _satisfied(expect: Expect, current: int | None) -> bool:
    """``current`` is the live item's version, or None when absent/expired."""
    if expect == ANY:
        return True
    if expect == ABSENT:
        return current is None
    if expect == PRESENT:
        return current is not None
    return current is not None and current == expect


class SqliteMetadataStore(MetadataStore):
    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000) -> None:
        self._memory = str(path) == ":memory:"
        self._path = str(path) if self._memory else str(Path(path).expanduser())
        self._busy_ms = busy_timeout_ms
        self._local = threading.local()
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._mem_lock = threading.RLock()
        self._last_purge = 0.0
        self._shared: _Connection | None = None
        if self._memory:
            self._shared = self._open()
        else:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        with self._guard():
            self._con().executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteMetadataStore({self._path!r})"

    # --- connections -------------------------------------------------------------------------
    def _open(self) -> _Connection:
        con = sqlite3.connect(
            self._path,
            timeout=self._busy_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        con.owner_pid = os.getpid()
        con.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        if not self._memory:
            # NORMAL first: switching a new file to WAL then syncs it once less (still at the critical moments)
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
        with self._conns_lock:
            self._conns.add(con)
        return con

    def _con(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        con = getattr(self._local, "con", None)
        if con is None or con.owner_pid != os.getpid():
            if con is not None:
                # A connection inherited through fork() must never be used nor closed in the child
                # (closing it could drop the child's own POSIX locks on the file): keep it alive.
                _INHERITED.append(con)
            # One connection per thread; it is closed when the thread ends (its thread-local dies).
            con = self._local.con = self._open()
        return con

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        return self._mem_lock if self._memory else contextlib.nullcontext()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._guard():
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), weakref.WeakSet()
        for con in conns:
            if con.owner_pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    con.close()
        self._local = threading.local()
        self._shared = None

    # --- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _item(row: tuple[Any, ...]) -> Item:
        pk, sk, data, version, ttl, g1p, g1s, g2p, g2s = row
        return Item(
            pk=pk,
            sk=sk,
            data=json.loads(data) if data else {},
            version=version,
            ttl=ttl,
            gsi1=(g1p, g1s) if g1p is not None else None,
            gsi2=(g2p, g2s) if g2p is not None else None,
        )

    @staticmethod
    def _live_version(con: sqlite3.Connection, pk: str, sk: str, now: int) -> int | None:
        row = con.execute(
            "SELECT version FROM items WHERE pk = ? AND sk = ? AND (ttl IS NULL OR ttl >= ?)", (pk, sk, now)
        ).fetchone()
        return None if row is None else row[0]

    def _maybe_purge(self, con: sqlite3.Connection, now: int) -> None:
        if now - self._last_purge >= PURGE_INTERVAL_SECONDS:
            self._last_purge = now
            con.execute("DELETE FROM items WHERE ttl IS NOT NULL AND ttl < ?", (now,))

    @staticmethod
    def _insert(con: sqlite3.Connection, op: Put, data: str, version: int) -> None:
        g1 = op.gsi1 or (None, None)
        g2 = op.gsi2 or (None, None)
        con.execute(
            "INSERT OR REPLACE INTO items (pk, sk, data, version, ttl, n, gsi1pk, gsi1sk, gsi2pk, gsi2sk)"
            " VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            (op.pk, op.sk, data, version, op.ttl, g1[0], g1[1], g2[0], g2[1]),
        )

    # --- port --------------------------------------------------------------------------------
    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        check_item_args(pk, sk)
        with self._guard():
            row = (
                self._con()
                .execute(
                    f"SELECT {_COLS} FROM items WHERE pk = ? AND sk = ? AND (ttl IS NULL OR ttl >= ?)",
                    (pk, sk, now_epoch()),
                )
                .fetchone()
            )
        return None if row is None else self._item(row)

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
        op = Put(pk, sk, data, expect=expect, ttl=ttl, gsi1=gsi1, gsi2=gsi2)
        check_ops([op])
        text = encode_data(data)  # validate before taking the write lock
        with self._write() as con:
            now = now_epoch()
            current = self._live_version(con, pk, sk, now)
            if not _satisfied(expect, current):
                raise ConditionFailed(f"put ({pk!r}, {sk!r}): expected {expect!r}, found version {current!r}")
            version = (current or 0) + 1
            self._insert(con, op, text, version)
            self._maybe_purge(con, now)
        return Item(pk, sk, data, version=version, ttl=ttl, gsi1=gsi1, gsi2=gsi2)

    def delete(self, pk: str, sk: str, *, expect: Expect = ANY) -> None:
        check_ops([Delete(pk, sk, expect=expect)])
        with self._write() as con:
            now = now_epoch()
            if expect != ANY:
                current = self._live_version(con, pk, sk, now)
                if not _satisfied(expect, current):
                    raise ConditionFailed(f"delete ({pk!r}, {sk!r}): expected {expect!r}, found version {current!r}")
            con.execute("DELETE FROM items WHERE pk = ? AND sk = ?", (pk, sk))
            self._maybe_purge(con, now)

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
        if index not in ("table", "gsi1", "gsi2"):
            raise ValueError(f"unknown index {index!r}")
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if index == "table":
            pcol, scol, order_cols = "pk", "sk", ["sk"]
        else:
            pcol, scol = f"{index}pk", f"{index}sk"
            order_cols = [scol, "pk", "sk"]  # ties on the index sort key: table key order
        where = [f"{pcol} = ?", "(ttl IS NULL OR ttl >= ?)"]
        args: list[Any] = [pk, now_epoch()]
        if prefix:
            where.append(f"{scol} >= ?")
            args.append(prefix)
            succ = prefix_successor(prefix)
            if succ is not None:
                where.append(f"{scol} < ?")
                args.append(succ)
        if start:
            where.append(f"{scol} >= ?")
            args.append(start)
        if end is not None:
            where.append(f"{scol} <= ?")
            args.append(end)
        if cursor:
            last = decode_query_cursor(cursor, index=index, pk=pk, descending=descending)
            if not isinstance(last, list) or len(last) != len(order_cols) or not all(isinstance(x, str) for x in last):
                raise ValueError("invalid cursor")
            op = "<" if descending else ">"
            where.append(f"({', '.join(order_cols)}) {op} ({', '.join('?' * len(order_cols))})")
            args.extend(last)
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {_COLS} FROM items WHERE {' AND '.join(where)}"
            f" ORDER BY {', '.join(f'{c} {direction}' for c in order_cols)} LIMIT ?"
        )
        args.append(limit + 1)
        with self._guard():
            rows = self._con().execute(sql, args).fetchall()
        items = [self._item(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            it = items[-1]
            if index == "table":
                pos = [it.sk]
            else:
                g = it.gsi1 if index == "gsi1" else it.gsi2
                assert g is not None
                pos = [g[1], it.pk, it.sk]
            next_cursor = encode_query_cursor(index, pk, descending, pos)
        return Page(items=items, cursor=next_cursor)

    def transact(self, ops: list[Put | Delete | Check]) -> TransactResult:
        check_ops(ops)
        texts = {(op.pk, op.sk): encode_data(op.data) for op in ops if isinstance(op, Put)}
        result = TransactResult()
        with self._write() as con:
            now = now_epoch()
            current: dict[tuple[str, str], int | None] = {}
            for op in ops:
                v = self._live_version(con, op.pk, op.sk, now)
                if not _satisfied(op.expect, v):
                    kind = type(op).__name__.lower()
                    raise ConditionFailed(
                        f"transact {kind} ({op.pk!r}, {op.sk!r}): expected {op.expect!r}, found version {v!r}"
                    )
                current[(op.pk, op.sk)] = v
            for op in ops:
                if isinstance(op, Put):
                    version = (current[(op.pk, op.sk)] or 0) + 1
                    self._insert(con, op, texts[(op.pk, op.sk)], version)
                    result.versions[(op.pk, op.sk)] = version
                elif isinstance(op, Delete):
                    con.execute("DELETE FROM items WHERE pk = ? AND sk = ?", (op.pk, op.sk))
            self._maybe_purge(con, now)
        return result

    def increment(
        self, pk: str, sk: str, *, amount: int = 1, ceiling: int | None = None, ttl: int | None = None
    ) -> int | None:
        check_item_args(pk, sk, ttl)
        with self._write() as con:
            now = now_epoch()
            row = con.execute("SELECT n, ttl FROM items WHERE pk = ? AND sk = ?", (pk, sk)).fetchone()
            live = row is not None and (row[1] is None or row[1] >= now)
            value = ((row[0] or 0) if live else 0) + amount
            if ceiling is not None and value > ceiling:
                return None
            if live:
                con.execute(
                    "UPDATE items SET n = ?, ttl = COALESCE(?, ttl) WHERE pk = ? AND sk = ?", (value, ttl, pk, sk)
                )
            else:
                con.execute(
                    "INSERT OR REPLACE INTO items (pk, sk, data, version, ttl, n) VALUES (?, ?, NULL, 0, ?, ?)",
                    (pk, sk, ttl, value),
                )
            self._maybe_purge(con, now)
        return value
