"""Local drop folder: polls ``<data-dir>/incoming/`` and ingests what lands there.

It plays the role S3 → SQS → ingest Lambda plays on AWS, through the same ``DropProcessor``. A file is
taken once its size has stopped changing between two scans (so half-copied files wait), and each
(key, ETag) is handled once per process; the job claims make it once per data directory as well.
When its job ends the processor moves the file to ``<data-dir>/processed/`` or ``<data-dir>/failed/``,
so a restart finds only files still to ingest (and moves, without announcing them, any whose job had
ended before the move).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from stratum.models import Job

from .drop import DropObject, DropProcessor, RetryableIngestError

log = logging.getLogger("stratum.watcher")

LOCAL_BUCKET = "local"


class DropWatcher:
    def __init__(
        self,
        processor: DropProcessor,
        *,
        interval: float = 1.0,
        on_job: Callable[[Job], None] | None = None,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_every: float = 60.0,
        scan: bool = True,
    ) -> None:
        self.scan = scan  # False: the loop only runs housekeeping (``stratum serve --no-watch``)
        self.processor = processor
        self.housekeeping = housekeeping  # e.g. expiring presigned uploads, run every housekeeping_every s
        self.housekeeping_every = housekeeping_every
        self.interval = interval
        self.on_job = on_job
        self._sizes: dict[str, int] = {}
        self._done: set[tuple[str, str | None]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan_once(self) -> list[Job]:
        """One pass over the folder; returns the jobs run."""
        jobs = []
        seen = {}
        for info in self.processor.drop.list(self.processor.prefix):
            seen[info.key] = info.size
            if self._sizes.get(info.key) != info.size:
                continue  # new or still growing: wait one more scan
            mark = (info.key, info.etag)
            if mark in self._done:
                continue
            o = DropObject(
                bucket=LOCAL_BUCKET, key=info.key, etag=info.etag, version_id=info.version_id, size=info.size
            )
            try:
                res = self.processor.handle(o)
            except RetryableIngestError as exc:
                log.warning("%s; retrying on a later scan", exc)
                continue
            except Exception:  # noqa: BLE001 - one bad file must not stop the watcher
                log.exception("could not ingest %s", info.key)
                self._done.add(mark)
                continue
            self._done.add(mark)
            job = res.job
            if job is not None and res.ran:
                jobs.append(job)
                if self.on_job:
                    self.on_job(job)
            elif job is not None and res.moved_to:
                log.info("%s: job %s had ended (%s); moved to %s", info.key, job.job_id, job.status, res.moved_to)
        self._sizes = seen
        return jobs

    def run_until_idle(self, max_scans: int = 10) -> list[Job]:
        """Scan until a pass finds nothing new (tests, ``stratum demo``)."""
        out: list[Job] = []
        for _ in range(max_scans):
            before = dict(self._sizes)
            jobs = self.scan_once()
            out += jobs
            if not jobs and before == self._sizes:
                break
        return out

    def start(self) -> None:
        def loop() -> None:
            last = time.monotonic()
            while not self._stop.is_set():
                try:
                    if self.scan:
                        self.scan_once()
                except Exception:  # noqa: BLE001
                    log.exception("drop folder scan failed")
                if self.housekeeping is not None and time.monotonic() - last >= self.housekeeping_every:
                    last = time.monotonic()
                    try:
                        self.housekeeping()
                    except Exception:  # noqa: BLE001
                        log.exception("drop folder housekeeping failed")
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="stratum-drop-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
