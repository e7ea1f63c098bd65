"""The CLI's cache of ``parts`` rows: one Parquet file per lot snapshot, on the local disk, reused by later runs.

``parts`` numbers every execution of a die (``is_retest``, ``is_final``, ``retest_ordinal``): window functions
over the lot's parts, which DuckDB computes for any query over the view, even ``count(*)``. A server keeps them
in a session table (``duckdb_views.MATERIALIZED``); a ``stratum sql`` process runs one query and exits, so it
paid them on every run. With this cache the first query that reads ``parts`` writes each lot's rows to
``<data-dir>/cache/sql/<workspace>/<key>.parquet`` and later processes read that file.

A key names everything the rows depend on: the format, the DuckDB version, the SQL of the views (so a new
stratum version recomputes) and the lot's snapshot (its member jobs, their order and tables, and the retest
policy). Members are immutable jobs, so a file never goes stale: a new snapshot of the lot has a new key. The
windows partition by lot, so the rows of a lot computed alone equal its rows among every lot's. Scopes that
filter wafers before the windows (``Scope.wafer_ids``) do not use the cache.

The directory is one workspace's (its databases allow only their own); files are written to a temporary name
and then linked to their name, never over another process's, so a reader never sees half a file nor a name's
bytes change (a machine crash can still leave a named file empty or short: nothing is fsynced, so a file not
framed as Parquet is written again). Past ``max_bytes`` the least recently used files go. A query reads its
files through private names (hard links, ``pin``) that it removes when its engine closes, so another process's
eviction of a name never takes a file from under a running query. A directory that cannot be written leaves
the query on the views.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import duckdb

from .duckdb_views import view_statements
from .views import Member

log = logging.getLogger("stratum.query")

FORMAT = 1
KEY_COLUMN = "_cache_key"  # the column a batch write partitions the rows by (not stored)
_STALE_TMP_SECONDS = 3600.0  # a temporary file this old was left by a process that died


@cache
def _views_digest() -> str:
    """A digest of the views' SQL for a fixed two-file lot: changes whenever the SQL of a view changes."""
    ms = [Member("L", f"J{i}", i, i, "J1", ("parts", "wafer_runs", "lot_files", "bin_records")) for i in range(2)]
    text = [stmt for pol in ("last", "highest_bin") for _, stmt in view_statements(ms, _uri, retest_policy=pol)]
    return hashlib.sha256("\n".join(text).encode()).hexdigest()


def _uri(table: str, m: Member) -> str:
    return f"{table}/{m.job_id}"


class PartsCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._pins: list[Path] = []
        self._pins_lock = threading.Lock()

    def directory(self, ws: str) -> Path:
        return self.root / ws

    def path(self, ws: str, lot_id: str, policy: str, members: Sequence[Member]) -> Path:
        ident = [
            FORMAT,
            duckdb.__version__,
            _views_digest(),
            ws,
            lot_id,
            policy,
            [[m.job_id, m.file_num, m.order, m.snapshot_job_id, list(m.tables)] for m in members],
        ]
        return self.directory(ws) / f"{hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:40]}.parquet"

    @staticmethod
    def intact(path: Path) -> bool:
        """The file exists and is framed as Parquet (``PAR1`` at both ends, a footer that fits): a file cut
        short, or left empty by a crash before its data reached the disk, is written again instead of read."""
        try:
            with open(path, "rb") as f:
                head = f.read(4)
                size = f.seek(0, os.SEEK_END)
                if head != b"PAR1" or size < 12:
                    return False
                f.seek(size - 8)
                tail = f.read(8)
        except OSError:
            return False
        return tail[4:] == b"PAR1" and int.from_bytes(tail[:4], "little") + 12 <= size

    def write(self, targets: Sequence[Path], copy: Callable[[str], None], empty: Callable[[str], None]) -> bool:
        """Write several files in one pass: ``copy(tmpdir)`` writes the rows of each target into
        ``tmpdir/<KEY_COLUMN>=<target's stem>/`` (DuckDB's partitioned COPY); a target without rows is written
        by ``empty(tmpfile)``. Each file then takes its name. False when the directory cannot be written or a file
        alone is over the budget (that file is not kept; the others are)."""
        if not targets:
            return True
        tmp = targets[0].parent / f".{secrets.token_hex(8)}.tmp"
        kept = True
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            copy(str(tmp))
            for target in targets:
                part = tmp / f"{KEY_COLUMN}={target.stem}"
                got = sorted(part.glob("*.parquet")) if part.is_dir() else []
                if not got:
                    tmp.mkdir(exist_ok=True)
                    got = [tmp / f"{target.stem}.parquet"]
                    empty(str(got[0]))
                if len(got) != 1 or got[0].stat().st_size > self.max_bytes:
                    kept = False  # the other lots' files are still kept
                    continue
                self._publish(got[0], target)
        except (OSError, duckdb.IOException, duckdb.PermissionException) as exc:
            log.info("parts cache: not written (%s)", exc)
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return kept

    def _publish(self, src: Path, target: Path) -> None:
        """Give ``src`` the name ``target`` unless another process did first: a name's bytes never change while
        it exists (a reader whose file another writer replaced mid-query, same rows in another layout, failed to
        decode it: DuckDB opens a name more than once per query)."""
        try:
            os.link(src, target)
        except FileExistsError:
            if not self.intact(target):
                os.replace(src, target)  # a file cut short: no reader can have used it
        except OSError:  # a file system without hard links
            os.replace(src, target)

    def pin(self, paths: Sequence[Path]) -> list[Path] | None:
        """A private name for each file (a hard link ``.<name>.<pid>.<random>.pin``) for this process's queries to
        read: evicting the shared name then leaves the file readable until ``release``. None when a file is gone
        or not intact (another process evicted it after it was checked): the caller falls back to the views. On
        a file system without hard links, the shared names (a concurrent eviction can then fail the query)."""
        pins: list[Path] = []
        for p in paths:
            pin = p.parent / f".{p.stem}.{os.getpid()}.{secrets.token_hex(4)}.pin"
            try:
                os.link(p, pin)
            except FileNotFoundError:
                self._unlink(pins)
                return None
            except OSError:
                self._unlink(pins)
                return list(paths)
            pins.append(pin)
            if not self.intact(pin):
                self._unlink(pins)
                return None
        with self._pins_lock:
            self._pins.extend(pins)
        return pins

    def release(self) -> None:
        """Remove this process's private names (the engine closes: no query of it reads them any more)."""
        with self._pins_lock:
            pins, self._pins = self._pins, []
        self._unlink(pins)

    @staticmethod
    def _unlink(paths: Sequence[Path]) -> None:
        for p in paths:
            with contextlib.suppress(OSError):
                p.unlink()

    def used(self, paths: Sequence[Path]) -> None:
        """Mark files as just used (eviction removes the least recently used first)."""
        for p in paths:
            with contextlib.suppress(OSError):
                os.utime(p)

    def evict(self, ws: str, keep: Sequence[Path]) -> None:
        """Remove the least recently used files until the directory is within ``max_bytes`` (never ``keep``),
        and temporary files and private names of processes that died. (A private name shares its file's
        bytes: it is not counted, and the bytes go when the last name does.)"""
        files: list[tuple[float, int, Path]] = []
        now = time.time()
        try:
            entries = list(os.scandir(self.directory(ws)))
        except OSError:
            return
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if e.name.endswith(".tmp"):
                if now - st.st_mtime > _STALE_TMP_SECONDS:
                    with contextlib.suppress(OSError):
                        shutil.rmtree(e.path) if e.is_dir(follow_symlinks=False) else os.unlink(e.path)
            elif e.name.endswith(".pin"):
                if not _alive(e.name.split(".")[-3]):
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)
            elif e.name.endswith(".parquet"):
                files.append((st.st_mtime, st.st_size, Path(e.path)))
        total = sum(size for _, size, _ in files)
        kept = {str(p) for p in keep}
        for _, size, p in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            if str(p) in kept:
                continue
            with contextlib.suppress(OSError):
                p.unlink()
                total -= size


def _alive(pid: str) -> bool:
    """Whether the process that made a private name still runs (a reused pid keeps a name longer: harmless)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except OSError:  # another user's process: alive
        return True
    return True
