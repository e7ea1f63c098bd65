"""A one-shot runtime (``stratum ingest``) builds what the on-publish classification needs on a thread while the
lake writer finishes (``Runtime._prepare_publish``); what it stores is what a runtime without it stores."""

from __future__ import annotations

from pathlib import Path

from stratum.devtools.demo import demo_specs
from stratum.devtools.stdf.lots import write_lot
from stratum.patterns.store import ROW_COLUMNS, PatternStore
from stratum.runtime import Runtime
from stratum.settings import settings_for


def _ingest(data: Path, files: list[Path], *, one_shot: bool) -> tuple[list[tuple], list[str], int]:
    rt = Runtime.from_settings(settings_for(data, backend="local"), one_shot=one_shot)
    prepared: list[str] = []
    real = rt._prepare_publish

    def spy(job, res) -> None:  # noqa: ANN001 - the hook's arguments
        real(job, res)
        prepared.append(f"{job.file_name}:{rt._publish_warm is not None}")

    rt.ingest.on_parsed = spy
    try:
        jobs = [rt.ingest.ingest_path("default", f) for f in files]
        assert [j.status for j in jobs] == ["succeeded"] * len(files)
        assert rt._publish_warm is None  # on_published waited for it
        classified = ("engine" in rt.__dict__) + ("patterns" in rt.__dict__)
        # the job ids differ between the data directories: each row names its file's position instead
        file_no = {j.job_id: i for i, j in enumerate(jobs)}
        job, at = ROW_COLUMNS.index("job_id"), ROW_COLUMNS.index("classified_at")
        rows = sorted(
            tuple(file_no[v] if c == job else v for c, v in enumerate(r) if c != at)
            for r in PatternStore(rt.meta).rows("default")
        )
    finally:
        rt.close()
    return rows, prepared, classified


def test_the_prepared_publish_stores_the_same_classifications(tmp_path: Path) -> None:
    sort, final = demo_specs()
    wafers, no_wafers = write_lot(sort, tmp_path / "sort").paths, write_lot(final, tmp_path / "final").paths[:1]
    files = wafers + no_wafers
    server_rows, server_prepared, _ = _ingest(tmp_path / "server", files, one_shot=False)
    cli_rows, cli_prepared, built = _ingest(tmp_path / "cli", files, one_shot=True)
    # every file's hook ran; a server never starts the thread (warm_up built its services at start), the CLI
    # does for each file with wafers
    assert len(wafers) == 3 and server_prepared == [f"{f.name}:False" for f in files]
    assert cli_prepared == [f"{f.name}:{f in wafers}" for f in files]
    assert built == 2
    assert len(server_rows) >= len(sort.wafers)
    assert cli_rows == server_rows
