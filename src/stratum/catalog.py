"""Jobs, lots, workspaces and idempotency claims, on top of the metadata store port.

Item layout (pk / sk):

- ``WS`` / ``<ws>``: workspace;
- ``WS#<ws>#JOB`` / ``<job_id>``: job (gsi1 ``WS#<ws>#JOBSTATUS#<status>``, gsi2 ``WS#<ws>#LOTJOBS#<lot>``);
- ``WS#<ws>#LOT`` / ``<lot_id>``: lot with its active snapshot (member jobs);
- ``WS#<ws>#SHA`` / ``<sha256>``: the published job holding a byte-identical file;
- ``WS#<ws>#OBJ`` / ``<bucket>/<key>#<version or etag>``: the job of one stored object (idempotent
  delivery); ``WS#<ws>#OBJKEY`` / ``<bucket>/<key>``: a job created before its object exists
  (API uploads and presigned uploads).

Publishing moves the lot pointer, the job's status and the content claim in ONE transaction, so a
failed or concurrent publish never leaves a half-updated lot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from stratum.cursor import InvalidCursor, decode_cursor, encode_cursor
from stratum.errors import BadRequest, NotFound
from stratum.lake.layout import check_workspace
from stratum.models import Job, Lot, SnapshotMember, utcnow
from stratum.storage.metadata import ABSENT, ConditionFailed, Delete, Item, MetadataStore, Put

Claim = tuple[str, str]  # (pk, sk) of an idempotency claim item; built only by the functions below


def _job_pk(ws: str) -> str:
    return f"WS#{ws}#JOB"


def _lot_pk(ws: str) -> str:
    return f"WS#{ws}#LOT"


def object_claim(ws: str, bucket: str, key: str, version: str) -> Claim:
    """The claim of one stored object (``version``: its version id, else its ETag): one job per delivery."""
    return f"WS#{ws}#OBJ", f"{bucket}/{key}#{version}"


def key_claim(ws: str, bucket: str, key: str) -> Claim:
    """The claim of a key whose job exists before its object does (API uploads, presigned uploads)."""
    return f"WS#{ws}#OBJKEY", f"{bucket}/{key}"


def _moved_pk(ws: str) -> str:
    return f"WS#{ws}#MOVED"


def _content_claim(ws: str, sha256: str) -> Claim:
    return f"WS#{ws}#SHA", sha256


class Catalog:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    # -- workspaces --------------------------------------------------------------------------
    def ensure_workspace(self, ws: str) -> None:
        check_workspace(ws)
        if self.meta.get("WS", ws) is None:
            try:
                self.meta.put("WS", ws, {"name": ws, "created_at": utcnow().isoformat()}, expect=ABSENT)
            except ConditionFailed:
                pass

    def list_workspaces(self) -> list[str]:
        out, cursor = [], None
        while True:
            page = self.meta.query("WS", limit=200, cursor=cursor)
            out += [i.sk for i in page.items]
            cursor = page.cursor
            if cursor is None:
                return out

    def reachable(self) -> bool:
        """Whether the metadata store answers a read (the status route's health probe)."""
        try:
            self.meta.get("WS", "default")
        except Exception:  # noqa: BLE001 - any failure means unavailable; reported, not raised
            return False
        return True

    # -- jobs --------------------------------------------------------------------------------
    @staticmethod
    def _job_indexes(job: Job) -> dict[str, tuple[str, str] | None]:
        ws = job.workspace
        return {
            "gsi1": (f"WS#{ws}#JOBSTATUS#{job.status}", job.job_id),
            "gsi2": (f"WS#{ws}#LOTJOBS#{job.lot_id}", job.job_id) if job.lot_id else None,
        }

    def job_put(self, job: Job, *, expect: Any) -> Put:
        idx = self._job_indexes(job)
        pk, data = _job_pk(job.workspace), job.model_dump(mode="json")
        return Put(pk, job.job_id, data, expect=expect, gsi1=idx["gsi1"], gsi2=idx["gsi2"])

    def create_job(self, job: Job, claims: Sequence[Claim] = ()) -> tuple[Job, int, bool]:
        """Create a queued job, atomically with its idempotency claims. When a claim already exists,
        nothing is created and the claimed job is returned instead. Returns (job, version, created)."""
        self.ensure_workspace(job.workspace)
        ops: list = [self.job_put(job, expect=ABSENT)]
        for pk, sk in claims:
            ops.append(Put(pk, sk, {"job_id": job.job_id}, expect=ABSENT))
        try:
            res = self.meta.transact(ops)
        except ConditionFailed:
            for pk, sk in claims:
                item = self.meta.get(pk, sk)
                if item is not None:
                    existing, version = self.get_job_v(job.workspace, item.data["job_id"])
                    return existing, version, False
            raise
        return job, res.versions.get((_job_pk(job.workspace), job.job_id), 1), True

    def discard_job(self, job: Job, claims: Sequence[Claim] = ()) -> None:
        """Remove a queued job and its claims (its input could not be stored: nothing to wait for)."""
        ops: list = [Delete(_job_pk(job.workspace), job.job_id)]
        ops += [Delete(pk, sk) for pk, sk in claims]
        self.meta.transact(ops)

    def next_file_num(self, ws: str) -> int:
        n = self.meta.increment(f"WS#{ws}#COUNTER", "file_num")
        assert n is not None
        return n

    def get_job_v(self, ws: str, job_id: str) -> tuple[Job, int]:
        item = self.meta.get(_job_pk(ws), job_id)
        if item is None:
            raise NotFound(f"job {job_id!r} not found")
        return Job.model_validate(item.data), item.version

    def get_job(self, ws: str, job_id: str) -> Job:
        return self.get_job_v(ws, job_id)[0]

    def save_job(self, job: Job, version: int) -> int:
        """Write the job if nobody else changed it since ``version``; returns the new version."""
        p = self.job_put(job, expect=version)
        return self.meta.put(p.pk, p.sk, p.data, expect=p.expect, gsi1=p.gsi1, gsi2=p.gsi2).version

    def list_jobs(
        self,
        ws: str,
        *,
        status: str | None = None,
        lot_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        index: Literal["table", "gsi1", "gsi2"]
        if lot_id is not None:
            pk, index = f"WS#{ws}#LOTJOBS#{lot_id}", "gsi2"
        elif status is not None:
            pk, index = f"WS#{ws}#JOBSTATUS#{status}", "gsi1"
        else:
            pk, index = _job_pk(ws), "table"
        want = (lambda j: j.status == status) if (lot_id is not None and status is not None) else None
        return self._page(pk, index, limit, cursor, Job.model_validate, want)

    def _page(
        self,
        pk: str,
        index: Literal["table", "gsi1", "gsi2"],
        limit: int,
        cursor: str | None,
        build: Callable[[dict], Any],
        want: Callable[[Any], bool] | None = None,
        descending: bool = True,
    ) -> tuple[list, str | None]:
        """One page of ``build(item.data)`` for items passing ``want``. The cursor names the sort key of
        the last item returned, so filtering never skips or repeats an item."""
        after = _decode_cursor(cursor)
        out: list = []
        last_sk = None
        while True:
            page = self.meta.query(
                pk,
                index=index,
                descending=descending,
                limit=limit + 1,
                start=None if descending else after,
                end=after if descending else None,
            )
            items = [it for it in page.items if _sort_key(it, index) != after]
            for it in items:
                obj = build(it.data)
                if want is None or want(obj):
                    if len(out) == limit:
                        return out, _encode_cursor(last_sk)
                    out.append(obj)
                    last_sk = _sort_key(it, index)
            if not items or page.cursor is None and len(page.items) <= limit:
                return out, None
            after = _sort_key(items[-1], index)

    def find_claim(self, pk: str, sk: str) -> str | None:
        """The job holding a claim made by :func:`object_claim` / :func:`key_claim`, if any."""
        item = self.meta.get(pk, sk)
        return None if item is None else item.data["job_id"]

    def add_claim(self, claim: Claim, job_id: str) -> None:
        """Point ``claim`` at an existing job; a claim already made (by a concurrent delivery) stays as it is."""
        with contextlib.suppress(ConditionFailed):
            self.meta.put(claim[0], claim[1], {"job_id": job_id}, expect=ABSENT)

    def record_move(self, ws: str, bucket: str, key: str, job_id: str, to: str) -> None:
        """A dropped object left the drop prefix for ``to`` when its job ended (latest move of that key wins)."""
        self.meta.put(_moved_pk(ws), f"{bucket}/{key}", {"job_id": job_id, "to": to})

    def find_move(self, ws: str, bucket: str, key: str) -> dict[str, str] | None:
        """``{"job_id", "to"}`` of the last object moved away from ``key``, if any."""
        item = self.meta.get(_moved_pk(ws), f"{bucket}/{key}")
        return None if item is None else {"job_id": item.data["job_id"], "to": item.data["to"]}

    def find_content(self, ws: str, sha256: str) -> str | None:
        """The published job holding a byte-identical file, if any."""
        return self.find_claim(*_content_claim(ws, sha256))

    # -- lots --------------------------------------------------------------------------------
    def get_lot_v(self, ws: str, lot_id: str) -> tuple[Lot, int] | None:
        item = self.meta.get(_lot_pk(ws), lot_id)
        if item is None:
            return None
        return Lot.model_validate(item.data), item.version

    def get_lot(self, ws: str, lot_id: str) -> Lot:
        got = self.get_lot_v(ws, lot_id)
        if got is None:
            raise NotFound(f"lot {lot_id!r} not found")
        return got[0]

    def iter_lots(self, ws: str) -> Iterator[Lot]:
        cursor = None
        while True:
            page = self.meta.query(_lot_pk(ws), limit=500, cursor=cursor)
            for it in page.items:
                yield Lot.model_validate(it.data)
            cursor = page.cursor
            if cursor is None:
                return

    def list_lots(
        self, ws: str, *, limit: int = 50, cursor: str | None = None, want: Callable[[Lot], bool] | None = None
    ) -> tuple[list[Lot], str | None]:
        return self._page(_lot_pk(ws), "table", limit, cursor, Lot.model_validate, want, descending=False)

    # -- lot annotations (notes attached by inbound webhooks, e.g. an MES "lot complete") ----------
    def add_lot_note(self, ws: str, lot_id: str, note: dict[str, Any]) -> dict[str, Any]:
        self.get_lot(ws, lot_id)  # NotFound for an unknown lot
        from stratum.ids import ulid

        rec = {"id": f"note_{ulid()}", "lot_id": lot_id, "created_at": utcnow().isoformat(), **note}
        self.meta.put(f"WS#{ws}#LOTNOTE#{lot_id}", rec["id"], rec, expect=ABSENT)
        return {"annotation_id": rec["id"], "lot_id": lot_id}

    def lot_notes(self, ws: str, lot_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` notes of a lot, oldest first."""
        page = self.meta.query(f"WS#{ws}#LOTNOTE#{lot_id}", descending=True, limit=limit)
        return [it.data for it in reversed(page.items)]

    def publish(
        self,
        job: Job,
        job_version: int,
        *,
        start_time: int | None,
        lot_meta: dict[str, Any],
        status: str,
        max_attempts: int = 50,
    ) -> tuple[Job, int, str | None]:
        """Atomically add ``job`` to its lot's snapshot and mark it ``status``.

        Returns (job, version, duplicate_of). When a byte-identical file was published meanwhile,
        nothing changes in the lot, and ``duplicate_of`` names the original job.
        """
        ws = job.workspace
        assert job.lot_id is not None
        for _ in range(max_attempts):
            got = self.get_lot_v(ws, job.lot_id)
            lot, expect = got if got else (None, ABSENT)
            seq = lot.next_publish_seq if lot else 1
            member = SnapshotMember(
                job_id=job.job_id,
                file_num=job.file_num,
                publish_seq=seq,
                start_time=start_time,
                file_name=job.file_name,
                tables=sorted(job.outputs),
            )
            members = (lot.members if lot else []) + [member]
            newest = max(members, key=lambda m: (m.start_time or 0, m.publish_seq))
            meta = (
                dict(lot_meta)
                if newest.job_id == job.job_id or lot is None
                else {k: getattr(lot, k) for k in ("part_type", "program", "tester_type", "node_name", "test_code")}
            )
            starts = [m.start_time for m in members if m.start_time]
            finishes = [x for x in ((lot.finish_time if lot else None), lot_meta.get("finish_time")) if x]
            new_lot = Lot(
                workspace=ws,
                lot_id=job.lot_id,
                active_job_id=job.job_id,
                members=members,
                start_time=min(starts) if starts else None,
                finish_time=max(finishes) if finishes else None,
                next_publish_seq=seq + 1,
                retest_policy=job.options.retest_policy,
                **{k: v for k, v in meta.items() if k != "finish_time"},
            )
            j = job.model_copy(deep=True)
            j.status = status  # type: ignore[assignment]
            j.snapshot = members
            j.publish_seq = seq
            j.finished_at = datetime.now(UTC)
            ops: list = [
                Put(_lot_pk(ws), job.lot_id, new_lot.model_dump(mode="json"), expect=expect),
                self.job_put(j, expect=job_version),
            ]
            if job.sha256:
                ops.append(Put(*_content_claim(ws, job.sha256), {"job_id": job.job_id}, expect=ABSENT))
            try:
                res = self.meta.transact(ops)
                return j, res.versions.get((_job_pk(ws), job.job_id), job_version + 1), None
            except ConditionFailed:
                if job.sha256:
                    other = self.find_content(ws, job.sha256)
                    if other and other != job.job_id:
                        return job, job_version, other
                current = self.meta.get(_job_pk(ws), job.job_id)
                if current is None or current.version != job_version:
                    raise ConditionFailed(f"job {job.job_id} was changed by another worker during publish") from None
                continue  # the lot moved on meanwhile: retry on the new pointer
        raise ConditionFailed(f"could not publish job {job.job_id}: lot {job.lot_id!r} kept changing")


def _sort_key(item: Item, index: str) -> str:
    if index == "gsi1" and item.gsi1:
        return item.gsi1[1]
    if index == "gsi2" and item.gsi2:
        return item.gsi2[1]
    return item.sk


def _encode_cursor(sk: str | None) -> str | None:
    return None if sk is None else encode_cursor({"after": sk})


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        after = decode_cursor(cursor)["after"]
    except (InvalidCursor, KeyError) as exc:
        raise BadRequest("invalid cursor") from exc
    if not isinstance(after, str):
        raise BadRequest("invalid cursor")
    return after


def keyset_page(
    meta: MetadataStore,
    pk: str,
    *,
    index: Literal["table", "gsi1", "gsi2"] = "table",
    limit: int = 50,
    cursor: str | None = None,
    build: Callable[[dict], Any] = dict,
    want: Callable[[Any], bool] | None = None,
    descending: bool = True,
) -> tuple[list, str | None]:
    """The API's one page-and-cursor codec for any item collection on the metadata port (jobs, lots,
    notifications, deliveries, ...): a filtered page never skips nor repeats an item."""
    return Catalog(meta)._page(pk, index, limit, cursor, build, want, descending=descending)
