"""The CLI as a new user meets it, as real subprocesses: folders, global options anywhere, JSON errors,
inspect summaries, a closed pipe, a cut result, a truncated file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stratum.devtools.stdf.lots import LotSpec, write_lot
from tests.functional.test_cli_process import STRATUM, _env, run


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """lots/A.stdf, lots/deep/er/B.stdf.gz, lots/notes.txt, lots/.hidden/C.stdf"""
    if not STRATUM.is_file():
        pytest.skip(f"the stratum console script is not installed at {STRATUM}")
    root = tmp_path_factory.mktemp("tree") / "lots"
    write_lot(LotSpec(lot_id="LOTA", wafers=("W01",), die_diameter=6), root)
    write_lot(LotSpec(lot_id="LOTB", wafers=("W01",), die_diameter=6, compression="gzip"), root / "deep" / "er")
    write_lot(LotSpec(lot_id="LOTC", wafers=("W01",), die_diameter=6), root / ".hidden")
    (root / "notes.txt").write_text("not stdf")
    return root


def test_ingest_folder_recursively_with_global_options_anywhere(tree: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    p = run(
        data, "--workspace", "w2", "ingest", "--json", str(tree), str(tree / "absent.stdf"), "--data-dir", str(data)
    )
    assert p.returncode == 1, p.stderr  # the missing file
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [(d.get("lot_id"), d["status"]) for d in lines] == [
        ("LOTA", "succeeded"),
        ("LOTB", "succeeded"),
        (None, "error"),
    ]
    assert lines[2] == {
        "file": str(tree / "absent.stdf"),
        "status": "error",
        "error": {"code": "not_found", "message": f"{tree / 'absent.stdf'}: no such file or directory"},
    }
    p = run(tmp_path, "lots", "--json", "-v", "--workspace", "w2", "--data-dir", str(data))
    assert (p.returncode, sorted(r["lot_id"] for r in json.loads(p.stdout))) == (0, ["LOTA", "LOTB"])
    assert "INFO" in p.stderr  # -v after the subcommand
    p = run(tmp_path, "--data-dir", str(data), "lots", "--json")  # default workspace: nothing there
    assert (p.returncode, json.loads(p.stdout)) == (0, [])


def test_every_option_shows_its_default() -> None:
    import argparse

    from stratum.cli import build_parser

    def parsers(p: argparse.ArgumentParser, name: str):
        yield name, p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub_name, sp in a.choices.items():
                    yield from parsers(sp, f"{name} {sub_name}")

    missing = []
    for name, p in parsers(build_parser(), "stratum"):
        fmt = p._get_formatter()
        for a in p._actions:
            if not a.option_strings or isinstance(a, argparse._HelpAction | argparse._VersionAction):
                continue
            text = fmt._expand_help(a) if a.help else ""
            if not text or (not a.required and "default" not in text):
                missing.append(f"{name} {a.option_strings[0]}: {text!r}")
    assert missing == []
    p = run(Path("."), "sql", "--help")
    assert "(default: table)" in p.stdout and "(default: not set)" in p.stdout


def test_broken_pipe_exits_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(STRATUM), "sql", "SELECT range AS n FROM range(100000)", "--format", "csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(tmp_path / "data"),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first row
    err = proc.stderr.read().decode()
    assert (proc.wait(timeout=120), err) == (141, "")


def test_sql_cut_at_the_cap_says_so_on_stderr(tmp_path: Path) -> None:
    env_data = tmp_path / "data"
    p = subprocess.run(
        [str(STRATUM), "sql", "SELECT range AS n FROM range(50)", "--format", "csv"],
        capture_output=True,
        text=True,
        env={**_env(env_data), "STRATUM_SQL__MAX_ROWS": "10"},
        check=False,
    )
    assert p.returncode == 0
    assert p.stdout.splitlines() == ["n"] + [str(i) for i in range(10)]
    assert "cut at 10 rows" in p.stderr and "stratum export" in p.stderr and "--limit" in p.stderr


def test_inspect_human_by_default_json_with_flag(tree: Path, tmp_path: Path) -> None:
    f = tree / "LOTA_WS1_01.stdf"
    assert f.is_file()
    p = run(tmp_path, "inspect", str(f))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == ["LOTA_WS1_01.stdf: valid STDF", "  lot        LOTA (from MIR), sublot S01"]
    assert "  started    2023-11-14T22:13:20Z" in p.stdout.splitlines()
    p = run(tmp_path, "inspect", "--json", str(f), str(tree / "absent.stdf"))
    assert p.returncode == 1
    first, second = (json.loads(x) for x in p.stdout.splitlines())
    assert (first["lot_id"], first["start_time"], second["status"]) == ("LOTA", 1_700_000_000, "error")


def test_accept_truncated_counts_agree_and_no_empty_lot(tree: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    whole = (tree / "LOTA_WS1_01.stdf").read_bytes()
    first_prr = whole.index(bytes([5, 20]), 200)  # REC_TYP/SUB of the first PRR (after the header records)
    cut_early = tmp_path / "early.stdf"
    cut_early.write_bytes(whole[: first_prr - 2 - 3])
    cut_late = tmp_path / "late.stdf"
    cut_late.write_bytes(whole[: len(whole) * 2 // 3])
    p = run(data, "ingest", "--accept-truncated", str(cut_early))
    assert p.returncode == 1
    assert "no part is complete before the cut (no PRR), so there is nothing to keep and no lot is created" in p.stderr
    p = run(data, "ingest", "--json", "--accept-truncated", str(cut_late))
    job = json.loads(p.stdout)
    assert (p.returncode, job["status"]) == (0, "partial")
    q = run(data, "sql", "SELECT (SELECT count(*) FROM parts), (SELECT count(*) FROM results)", "--format", "json")
    assert json.loads(q.stdout)["rows"] == [[job["parts"], job["rows"]["results"]]]
    lots = json.loads(run(data, "lots", "--json").stdout)
    assert [(r["lot_id"], r["part_count"]) for r in lots] == [("LOTA", job["parts"])]


def test_readme_and_demo_hints_say_how_to_reach_the_cli(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    lines = (root / "README.md").read_text().splitlines()
    first_bare = next(i for i, ln in enumerate(lines) if ln.startswith("stratum "))
    assert any("source .venv/bin/activate" in ln for ln in lines[:first_bare])
    code = (
        "import sys, argparse; sys.argv = [sys.argv[1]]; from stratum.cli.local import _after_demo; "
        "print('\\n'.join(_after_demo(None, argparse.Namespace(data_dir=None))))"
    )
    env = {**_env(tmp_path), "PATH": "/usr/bin:/bin"}  # the venv is not activated
    p = subprocess.run(
        [str(STRATUM.with_name("python")), "-c", code, ".venv/bin/stratum"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    hints = [ln for ln in p.stdout.splitlines() if ln.startswith("  ")]
    assert hints[0] == "  .venv/bin/stratum lots"
    assert all(h.startswith("  .venv/bin/stratum ") for h in hints[:-1])
    assert hints[-1] == "  (or `source .venv/bin/activate` once, then plain `stratum ...`)"
