"""Fast unit tests of the infra helpers (no synth)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from infra.stratum_infra import constants as C
from infra.stratum_infra.assets import assemble_function_asset, layer_asset

pytestmark = pytest.mark.infra


def _fake_project(root: Path, with_handler: bool) -> Path:
    pkg = root / "src" / "stratum"
    (pkg / "sub" / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "q.sql").write_text("select 1")
    (pkg / "sub" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (pkg / "stale.pyc").write_bytes(b"\0")
    fn = root / "functions" / "ingest"
    fn.mkdir(parents=True)
    (fn / "helpers.py").write_text("X = 1\n")
    (fn / "README.md").write_text("not shipped")
    if with_handler:
        (fn / "handler.py").write_text("import stratum\n\ndef handler(event, context):\n    return {}\n")
    return root


def test_function_asset_has_handler_and_stratum_package_without_bytecode(tmp_path: Path) -> None:
    root = _fake_project(tmp_path / "proj", with_handler=True)
    asset = assemble_function_asset("ingest", root, tmp_path / "build")
    files = {p.relative_to(asset.path).as_posix() for p in asset.path.rglob("*") if p.is_file()}
    assert files == {
        "handler.py",
        "helpers.py",
        "requirements.txt",
        "stratum/__init__.py",
        "stratum/sub/__init__.py",
        "stratum/sub/q.sql",
    }
    assert asset.missing == ()


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("function", ["ingest", "api"])
def test_function_assets_leave_out_the_dev_tools(tmp_path: Path, function: str) -> None:
    from infra.stratum_infra.assets import shipped_package_files

    asset = assemble_function_asset(function, ROOT, tmp_path / "build")
    files = {p.relative_to(asset.path).as_posix() for p in asset.path.rglob("*") if p.is_file()}
    package = ROOT / "src" / "stratum"
    expected = {"stratum/" + p.relative_to(package).as_posix() for p in shipped_package_files(package)}
    assert {f for f in files if f.startswith("stratum/")} == expected
    assert not [f for f in files if f.startswith("stratum/devtools")]
    assert (package / "devtools" / "stdf" / "lots.py").is_file()  # the wing exists; it is only left out
    for must in ("stratum/stdf/reader.py", "stratum/stdf/flags.py", "stratum/api/app.py", "handler.py"):
        assert must in files
    # only the CLI's `stratum demo` names the dev tools, and it imports them lazily
    naming = sorted(
        f for f in files if f.endswith(".py") and "stratum.devtools" in (asset.path / f).read_text(encoding="utf-8")
    )
    assert naming == ["stratum/cli/local.py"]


def test_function_asset_reports_a_missing_handler_and_is_rebuilt_from_scratch(tmp_path: Path) -> None:
    root = _fake_project(tmp_path / "proj", with_handler=False)
    build = tmp_path / "build"
    (build / "functions" / "ingest").mkdir(parents=True)
    (build / "functions" / "ingest" / "old.py").write_text("stale")
    asset = assemble_function_asset("ingest", root, build)
    assert asset.missing == ("functions/ingest/handler.py",)
    assert not (asset.path / "old.py").exists()


def test_unbuilt_layer_uses_a_placeholder(tmp_path: Path) -> None:
    asset = layer_asset("query", tmp_path / "nope", tmp_path / "build")
    assert not asset.built and (asset.path / "python").is_dir()
    (tmp_path / "layers" / "query" / "python").mkdir(parents=True)
    (tmp_path / "layers" / "query" / "python" / "duckdb").mkdir()
    assert layer_asset("query", tmp_path / "layers", tmp_path / "build").built


def test_notification_filters_refuse_overlapping_suffixes() -> None:
    from infra.stratum_infra.ingest import notification_filters

    assert len(notification_filters("incoming/", C.STDF_SUFFIXES)) == len(C.STDF_SUFFIXES)
    with pytest.raises(ValueError, match="overlap"):
        notification_filters("incoming/", [".stdf.gz", ".gz"])


def test_api_timeouts() -> None:
    t = C.api_timeouts(C.DEFAULT_API_INTEGRATION_TIMEOUT_SECONDS)
    assert t.sql_seconds < t.lambda_seconds <= t.integration_seconds == 29
    raised = C.api_timeouts(40)
    assert raised.sql_seconds == C.SQL_TIMEOUT_SECONDS and raised.lambda_seconds > C.SQL_TIMEOUT_SECONDS
    with pytest.raises(ValueError):
        C.api_timeouts(5)


def test_visibility_timeout_rule() -> None:
    assert C.INGEST.timeout.to_seconds() * C.VISIBILITY_TIMEOUT_FACTOR <= 12 * 3600  # SQS maximum


# ------------------------------------------------------------------------------------------ bytecode (pycs)

VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _run_from(path: Path, code: str) -> str:
    """``code`` in a fresh interpreter importing from ``path`` only, writing no bytecode (as on Lambda)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_bytecode_is_hash_based_unchecked_and_used_whatever_the_timestamps(tmp_path: Path) -> None:
    from infra.stratum_infra.assets import compile_bytecode, pyc_path

    site = tmp_path / "python"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("")
    (site / "pkg" / "mod.py").write_text("X = 1\n")
    (site / "top.py").write_text("Y = 'a'\n")
    report = compile_bytecode(site, sys.executable, VERSION)
    assert report == {
        "python": VERSION,
        "invalidation_mode": "unchecked-hash",
        "pyc_files": 3,
        "pyc_bytes": sum(p.stat().st_size for p in site.rglob("*.pyc")),
        "sources": 3,
        "not_compiled": [],
    }
    pyc = pyc_path(site / "pkg" / "mod.py", VERSION)
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01  # hash-based, check_source off
    # the source changes and gets a new timestamp: the interpreter still loads the shipped bytecode
    (site / "pkg" / "mod.py").write_text("X = 2\n")
    os.utime(site / "pkg" / "mod.py", (0, 0))
    assert _run_from(site, "import pkg.mod, top; print(pkg.mod.X, top.Y)") == "1 a"


def test_function_asset_with_bytecode_has_a_pyc_for_every_module(tmp_path: Path) -> None:
    from infra.stratum_infra.assets import pyc_path

    asset = assemble_function_asset(
        "api", ROOT, tmp_path / "build", bytecode_python=sys.executable, python_version=VERSION
    )
    sources = list(asset.path.rglob("*.py"))
    assert len(sources) > 100 and asset.bytecode is not None
    assert [p for p in sources if not pyc_path(p, VERSION).is_file()] == []
    assert asset.bytecode["pyc_files"] == asset.bytecode["sources"] == len(sources)


def test_find_python_refuses_an_interpreter_of_another_version() -> None:
    from infra.stratum_infra.assets import find_python

    assert find_python(VERSION) is not None  # this interpreter at least
    with pytest.raises(SystemExit, match="not 2.7"):
        find_python("2.7", sys.executable)
