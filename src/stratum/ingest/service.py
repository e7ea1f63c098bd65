"""The ingest service: every file becomes a tracked job that publishes an immutable snapshot.

One service for every entry point (CLI, local drop-folder watcher, API uploads, the S3/SQS Lambda):

1. ``create_job`` registers a queued job, atomically with its idempotency claims (the stored object's
   bucket/key/version, or the key an upload will land on);
2. ``run_job`` moves it to running, streams the input through the reader into the job's own Parquet
   files (invisible until complete), then publishes: the lot pointer, the job status and the content
   claim change in one transaction. Any failure before that publishes nothing and removes what the
   job wrote; the lot's previous snapshot keeps answering queries.

Environment variables: none (everything comes from ``Settings``).
Integrations: ``ObjectStore`` (lake), ``MetadataStore`` (via ``Catalog``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from stratum.catalog import Catalog
from stratum.errors import no_space
from stratum.events.port import EventPort
from stratum.ids import new_job_id
from stratum.lake import layout
from stratum.models import Job, JobError, JobOptions, JobSource, JobWarning, TableOutput
from stratum.settings import Settings
from stratum.stdf.errors import StdfError
from stratum.stdf.reader import ParseResult, ReaderOptions, parse
from stratum.stdf.source import ByteSource, decompression_limits
from stratum.storage.metadata import ConditionFailed
from stratum.storage.objectstore import ObjectNotFound, ObjectStore

from .reconcile import SummaryCheck

if TYPE_CHECKING:  # pyarrow stays out of processes that never write the lake (the API Lambda)
    from stratum.lake.writer import LakeWriter, Manifest

log = logging.getLogger("stratum.ingest")

STALE_RUNNING = timedelta(minutes=20)  # longer than a Lambda can live (15 min)
PROGRESS_EVERY_S = 2.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not mistaken."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_owner(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{_start_ticks(pid)}"


def owner_alive(owner: str) -> bool | None:
    """Whether the process that owns a job still runs: None when it ran on another host (unknowable)."""
    try:
        host, boot, pid_s, ticks = owner.split("/")
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if boot != _boot_id():
        return False  # the machine rebooted since
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _start_ticks(pid) == ticks


class IngestDeadline(Exception):
    """The worker's time is nearly up (``run_job(deadline=...)``): stop reading, publish nothing."""


class HashingReader:
    """Wraps the raw input: SHA-256 and byte count of everything read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.n = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.n += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        close = getattr(self.raw, "close", None)
        if close:
            close()


def lot_id_from_name(file_name: str) -> str:
    """Lot id for a file without MIR: the file name without directories and STDF/compression suffixes."""
    name = Path(file_name).name
    lower = name.lower()
    for suffix in (".gz", ".bz2", ".zip"):
        if lower.endswith(suffix):
            name, lower = name[: -len(suffix)], lower[: -len(suffix)]
    for suffix in (".stdf", ".std"):
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name or "UNKNOWN"


@dataclass
class InputHandle:
    """How to open a job's input, and what is already known about it."""

    open: Callable[[], IO[bytes]]
    size: int | None = None
    sha256: str | None = None


class IngestService:
    def __init__(
        self,
        catalog: Catalog,
        lake: ObjectStore,
        settings: Settings,
        *,
        events: EventPort | None = None,
        wafer_classifier: Any = None,
    ) -> None:
        self.catalog = catalog
        self.lake = lake
        self.settings = settings
        self.events = events
        # (wafers, dies) -> wafer_patterns rows for each ingested file (stratum.patterns, wired by the runtime)
        self.wafer_classifier = wafer_classifier

    def emit(self, job: Job) -> None:
        """Publish ``job.<status>`` for a job that just ended (succeeded, partial or failed). The event id is
        derived from the job and its attempt, so a redelivered file never emits the same fact twice."""
        if self.events is None or job.status not in ("succeeded", "partial", "failed"):
            return
        from stratum.events import new_event

        subject = {"job_id": job.job_id, **({"lot_id": job.lot_id} if job.lot_id else {})}
        data: dict[str, Any] = {"file_name": job.file_name, "status": job.status, "parts": job.parts}
        if job.error:
            data["error"] = {"code": job.error.code, "message": job.error.message}
        try:
            self.events.publish(
                new_event(
                    f"job.{job.status}",
                    job.workspace,
                    subject=subject,
                    data=data,
                    event_id=f"evt_{job.job_id}_{job.attempts}_{job.status}",
                )
            )
        except Exception:  # noqa: BLE001 - the job is done either way; the event port logs and may replay
            log.exception("could not publish the %s event of job %s", job.status, job.job_id)

    # -- jobs -------------------------------------------------------------------------------------
    def default_options(self, **overrides: Any) -> JobOptions:
        base: dict[str, Any] = {
            "accept_truncated": self.settings.accept_truncated,
            "retest_policy": self.settings.retest_policy,
            "test_key": self.settings.test_key,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return JobOptions(**base)

    def create_job(
        self,
        workspace: str,
        file_name: str,
        source: JobSource,
        *,
        size: int | None = None,
        options: JobOptions | None = None,
        claims: Sequence[tuple[str, str]] = (),
        job_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[Job, bool]:
        """A queued job; with claims, an existing job for the same claim is returned instead.
        Returns (job, created)."""
        layout.check_workspace(workspace)
        job = Job(
            job_id=job_id or new_job_id(),
            workspace=workspace,
            file_num=self.catalog.next_file_num(workspace),
            file_name=file_name,
            source=source,
            size=size,
            options=options or self.default_options(),
            expires_at=expires_at,
        )
        job, _, created = self.catalog.create_job(job, list(claims))
        return job, created

    def ingest_path(
        self,
        workspace: str,
        path: str | os.PathLike,
        *,
        options: JobOptions | None = None,
        progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """CLI: ingest a local file now."""
        p = Path(path)
        size = p.stat().st_size
        job, _ = self.create_job(
            workspace, p.name, JobSource(kind="cli", path=str(p.resolve())), size=size, options=options
        )
        # no pre-hash: the reader hashes while it streams (in the decompression thread), and a duplicate
        # is recognised before anything is published
        handle = InputHandle(open=lambda: open(p, "rb"), size=size)
        return self.run_job(workspace, job.job_id, handle, progress=progress)

    def reclaim(self, workspaces: list[str]) -> list[Job]:
        """Jobs left ``running`` by a process that died (SIGKILL, power loss) fail with ``worker_died``,
        a retryable code: the drop folder re-runs dropped and uploaded files; nothing was published,
        so each lot keeps its previous snapshot. Jobs of live processes or other hosts are left alone."""
        out = []
        for ws in workspaces:
            cursor = None
            while True:
                jobs, cursor = self.catalog.list_jobs(ws, status="running", limit=200, cursor=cursor)
                for job in jobs:
                    if job.owner is not None and owner_alive(job.owner) is False:
                        out.append(self._fail_dead(job))
                if cursor is None:
                    break
        return out

    def _fail_dead(self, job: Job) -> Job:
        current, version = self.catalog.get_job_v(job.workspace, job.job_id)
        if current.status != "running" or current.owner != job.owner:
            return current
        current.status = "failed"
        current.finished_at = datetime.now(UTC)
        current.error = JobError(
            code="worker_died",
            message="the process ingesting this file stopped before it finished (killed or crashed); nothing "
            "was published and the lot's previous snapshot is unchanged"
            + ("; the drop folder runs it again" if current.source.kind in ("drop", "upload", "presign") else ""),
        )
        try:
            self.catalog.save_job(current, version)
        except ConditionFailed:
            return self.catalog.get_job(job.workspace, job.job_id)
        log.warning("job %s: its worker died; marked failed (worker_died)", job.job_id)
        return current

    # -- running ----------------------------------------------------------------------------------
    def run_job(
        self,
        workspace: str,
        job_id: str,
        handle: InputHandle,
        progress: Callable[[Job], None] | None = None,
        *,
        retry_failed: frozenset[str] = frozenset(),
        max_attempts: int = 3,
        deadline: float | None = None,
    ) -> Job:
        """Run a queued job (a running job whose worker died is taken over). With ``retry_failed``,
        a job that failed with one of those error codes runs again, up to ``max_attempts``.

        ``deadline`` (a ``time.monotonic()`` value) is when the worker must stop reading: a Lambda
        passes its own end minus a reserve for cleanup, so a file too large for one invocation fails
        its job with ``ingest_timeout`` instead of leaving it running when the function is killed."""
        job, version = self.catalog.get_job_v(workspace, job_id)
        now = datetime.now(UTC)
        retry = (
            job.status == "failed"
            and job.error is not None
            and job.error.code in retry_failed
            and job.attempts < max_attempts
        )
        if job.terminal and not retry:
            return job
        job.error = None
        if job.status == "running" and job.started_at and now - job.started_at < STALE_RUNNING:
            return job  # another worker has it
        job.status = "running"
        job.started_at = now
        job.owner = process_owner()
        job.attempts += 1
        job.size = handle.size if handle.size is not None else job.size
        try:
            version = self.catalog.save_job(job, version)
        except ConditionFailed:
            return self.catalog.get_job(workspace, job_id)  # someone else took it

        t0 = time.perf_counter()
        ctx = _Run(self, job, version, progress, deadline)
        try:
            if handle.sha256:
                job.sha256 = handle.sha256
                dup = self.catalog.find_content(workspace, handle.sha256)
                if dup:
                    return ctx.duplicate(dup)
            return ctx.execute(handle, t0)
        except Exception as exc:  # noqa: BLE001 - every failure ends the job; details go to the log
            if no_space(exc):
                log.error("ingest job %s failed: no space left on device (%s)", job_id, exc)
                return ctx.fail(
                    JobError(
                        code="no_space",
                        message="no space left on device while writing the lake; nothing was published and "
                        "the lot's previous snapshot is unchanged. Free disk space and ingest the file again",
                    )
                )
            log.exception("ingest job %s failed unexpectedly", job_id)
            return ctx.fail(
                JobError(
                    code="internal_error",
                    message=f"internal error while ingesting ({type(exc).__name__}); the lot's "
                    f"previous snapshot is unchanged; see the service log for job {job_id}",
                )
            )


class _Run:
    """State of one job execution."""

    def __init__(
        self,
        svc: IngestService,
        job: Job,
        version: int,
        progress: Callable[[Job], None] | None,
        deadline: float | None = None,
    ) -> None:
        self.svc = svc
        self.job = job
        self.version = version
        self.progress = progress
        self.deadline = deadline
        self.writer: LakeWriter | None = None
        self.manifest: Manifest | None = None
        self.check: SummaryCheck | None = None
        self.cpu: dict[str, float] = {}
        self._last_progress = time.monotonic()

    def _save(self) -> None:
        self.version = self.svc.catalog.save_job(self.job, self.version)
        if self.progress:
            self.progress(self.job)

    def _on_chunk(self, source: ByteSource, res: ParseResult) -> None:
        self.job.bytes_read = source.consumed  # input bytes behind what the parser has seen (compressed)
        self.job.stdf_bytes = source.decompressed  # STDF bytes so far; the final count when the job ends
        self.job.records = res.records
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise IngestDeadline
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self._save()
        elif self.progress:
            self.progress(self.job)

    def execute(self, handle: InputHandle, t0: float) -> Job:
        job, s = self.job, self.svc.settings
        try:
            raw = handle.open()
        except (OSError, ObjectNotFound) as exc:
            return self.fail(JobError(code="input_unreadable", message=f"cannot read the input file: {exc}"))
        from stratum.lake.writer import LakeWriter

        reader = HashingReader(raw)
        self.writer = LakeWriter(
            self.svc.lake, job.workspace, job.job_id, job.file_num, wafer_classifier=self.svc.wafer_classifier
        )
        opts = ReaderOptions(
            chunk_bytes=s.chunk_bytes,
            accept_truncated=job.options.accept_truncated,
            test_key=job.options.test_key,
            fallback_lot_id=lot_id_from_name(job.file_name),
            progress=self._on_chunk,
        )
        try:
            with ByteSource(
                reader,  # type: ignore[arg-type]  # a file-like reader
                size=handle.size,
                block_size=s.chunk_bytes,
                limits=decompression_limits(s.input_limits),
            ) as source:
                self.check = SummaryCheck(self.writer)
                res = parse(source, self.check, opts)
                # read to the end so the hash covers trailing bytes the reader did not need
                while reader.read(1 << 20):
                    pass
            inflate_cpu = source.inflate_cpu_s
            t_parse = time.perf_counter() - t0
            job.sha256 = reader.sha.hexdigest()
            job.size = reader.n
            job.lot_id = res.header.lot_id if res.header else None
            if res.partial and not res.parts:
                self.writer.abort()
                return self.fail(
                    JobError(
                        code="truncated_no_parts",
                        message=f"{res.truncated}; no part is complete before the cut (no PRR), so there is "
                        "nothing to keep and no lot is created",
                        offset=res.truncated.offset if res.truncated else None,
                    )
                )
            dup = self.svc.catalog.find_content(job.workspace, job.sha256)
            if dup:
                self.writer.abort()
                return self.duplicate(dup)
            self.manifest = self.writer.finish(
                res,
                {"file_name": job.file_name, "sha256": job.sha256, "size": reader.n},
                {"retest_policy": job.options.retest_policy, "test_key": job.options.test_key},
            )
            # CPU seconds per pipeline stage (each on its own thread but walk and decode): bench and logs
            self.cpu = {
                "inflate_cpu_s": inflate_cpu,
                "walk_cpu_s": res.cpu_s["walk"],
                "decode_cpu_s": res.cpu_s["decode"],
                "arrow_cpu_s": self.writer.cpu_s["arrow"],
                "encode_cpu_s": self.writer.cpu_s["encode"],
            }
        except StdfError as exc:
            self.writer.abort()
            return self.fail(JobError(**exc.to_dict()))
        except IngestDeadline:
            self.writer.abort()
            size = f" of {job.size / 1e6:.0f} MB" if job.size else ""
            return self.fail(
                JobError(
                    code="ingest_timeout",
                    message=f"the worker's time limit was reached after reading {reader.n / 1e6:.0f} MB{size} "
                    f"({time.perf_counter() - t0:.0f} s); nothing was published. Ingest this file where time "
                    "is not limited (stratum ingest) or split it",
                )
            )
        except BaseException:
            self.writer.abort()
            raise
        finally:
            reader.close()
        t_write = time.perf_counter() - t0
        return self.publish(res, t_parse, t_write, t0)

    def publish(self, res: ParseResult, t_parse: float, t_write: float, t0: float) -> Job:
        job, m = self.job, self.manifest
        assert m is not None
        job.stdf_bytes = res.bytes_decompressed
        job.records = res.records
        job.record_counts = res.record_counts
        job.rows = m.rows()
        dropped = self._dropped_results(res)
        if dropped:  # stored, but outside every view: count what the lot keeps
            job.rows["results"] -= dropped
            for w in res.warnings:
                if w.code == "pir_without_prr_at_end":
                    w.message += f" ({dropped} results; the counts of this job exclude them)"
        job.parts = res.parts
        job.outputs = {t: TableOutput(key=f.key, rows=f.rows, bytes=f.bytes) for t, f in m.tables.items()}
        job.warnings = [JobWarning(**w.to_dict()) for w in res.warnings] + self._summary_warnings(res)
        if res.truncated is not None:
            job.warnings.insert(
                0, JobWarning(code="truncated", message=str(res.truncated), offset=res.truncated.offset)
            )
        mir = res.mir or {}
        start = mir.get("START_T") or None
        lot_meta = {
            "part_type": (mir.get("PART_TYP") or "").strip() or None,
            "program": (mir.get("JOB_NAM") or "").strip() or None,
            "tester_type": (mir.get("TSTR_TYP") or "").strip() or None,
            "node_name": (mir.get("NODE_NAM") or "").strip() or None,
            "test_code": (mir.get("TEST_COD") or "").strip() or None,
            "finish_time": (res.mrr or {}).get("FINISH_T") or None,
        }
        assert job.lot_id is not None  # set from the MIR (or the fallback) before anything is written
        try:
            self.svc.lake.put_bytes(
                layout.manifest_key(job.workspace, job.lot_id, job.job_id),
                _manifest_json(m, job),
                content_type="application/json",
            )
            job.timings = {
                "parse_write_s": round(t_parse, 3),
                "finish_s": round(t_write - t_parse, 3),
                **{k: round(v, 3) for k, v in self.cpu.items()},
            }
            status = "partial" if res.partial else "succeeded"
            t1 = time.perf_counter()
            published, version, dup = self.svc.catalog.publish(
                job, self.version, start_time=start, lot_meta=lot_meta, status=status
            )
        except BaseException:
            self._remove_outputs()
            raise
        if dup:
            self._remove_outputs()
            return self.duplicate(dup)
        published.timings["publish_s"] = round(time.perf_counter() - t1, 3)
        published.timings["total_s"] = round(time.perf_counter() - t0, 3)
        self.job, self.version = published, version
        try:
            self._save()
        except ConditionFailed:
            pass  # timings only
        log.info("job %s %s: lot %s, %s records, %s parts", job.job_id, status, job.lot_id, res.records, res.parts)
        self.svc.emit(self.job)
        return self.job

    def _dropped_results(self, res: ParseResult) -> int:
        """Result rows written for parts the file never closed (a truncated end); read back only then."""
        m = self.manifest
        if not res.dropped_parts or m is None or "results" not in m.tables:
            return 0
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        with self.svc.lake.open_read(m.tables["results"].key) as fh:
            seq = pq.read_table(fh, columns=["part_seq"]).column("part_seq")
        return int(pc.sum(pc.is_in(seq, value_set=pa.array(res.dropped_parts, seq.type)).cast("int64")).as_py() or 0)

    def _summary_warnings(self, res: ParseResult) -> list[JobWarning]:
        """One warning per summary count (HBR/SBR/PCR/WRR) that disagrees with the raw records, with both numbers,
        up to ``max_summary_warnings``; a cross-check never fails the ingest."""
        if self.check is None:
            return []
        try:
            found = self.check.mismatches(res.wafers, self.job.options.retest_policy)
        except Exception:  # noqa: BLE001 - a cross-check must not lose the file
            log.exception("summary cross-check failed for job %s", self.job.job_id)
            return [JobWarning(code="summary_check_failed", message="the summary records could not be cross-checked")]
        cap = self.svc.settings.max_summary_warnings
        out = [JobWarning(**m.to_warning()) for m in found[:cap]]
        if len(found) > cap:
            out.append(
                JobWarning(
                    code="summary_mismatch",
                    message=f"{len(found) - cap} more summary counts disagree with the raw records (not listed)",
                    count=len(found) - cap,
                )
            )
        return out

    def _remove_outputs(self) -> None:
        job = self.job
        if job.lot_id is None:
            return
        for f in self.manifest.tables.values() if self.manifest else ():
            try:
                self.svc.lake.delete(f.key)
            except Exception:  # noqa: BLE001 - best effort; unreferenced files are invisible anyway
                log.warning("could not delete %s", f.key)
        try:
            self.svc.lake.delete(layout.manifest_key(job.workspace, job.lot_id, job.job_id))
        except Exception:  # noqa: BLE001 - best effort, as above
            log.warning("could not delete the manifest of job %s", job.job_id)

    def fail(self, error: JobError) -> Job:
        self.job.status = "failed"
        self.job.error = error
        self.job.finished_at = datetime.now(UTC)
        self.job.outputs = {}
        self._final_save()
        log.info("job %s failed: %s", self.job.job_id, error.message)
        self.svc.emit(self.job)
        return self.job

    def duplicate(self, original: str) -> Job:
        orig = self.svc.catalog.get_job(self.job.workspace, original)
        self.job.status = "duplicate"
        self.job.duplicate_of = original
        self.job.lot_id = orig.lot_id
        self.job.rows = {}
        self.job.outputs = {}
        self.job.finished_at = datetime.now(UTC)
        self._final_save()
        return self.job

    def _final_save(self) -> None:
        try:
            self._save()
        except ConditionFailed:
            current, version = self.svc.catalog.get_job_v(self.job.workspace, self.job.job_id)
            if current.terminal:
                self.job = current
                return
            self.version = version
            self._save()


def _manifest_json(m: Manifest, job: Job) -> bytes:
    import json

    d = m.to_dict()
    d["file_name"] = job.file_name
    d["sha256"] = job.sha256
    d["records"] = job.records
    return json.dumps(d, indent=1).encode()
