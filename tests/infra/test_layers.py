"""Lambda package size: function asset + its layers must stay under 230 MB unzipped (Lambda's limit: 262,144,000).

The fast tests read the committed snapshots ``layers/<name>/manifest.json`` (written by ``make layers``); the
slow test really builds the layers from PyPI wheels into a temp folder and checks again.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.infra

LAYERS = ROOT / "layers"
CONFIG = json.loads((LAYERS / "layers.json").read_text())
LIMIT = CONFIG["limit_bytes"]
MB = 1_000_000


def _build_module():
    spec = importlib.util.spec_from_file_location("stratum_layers_build", LAYERS / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


build = _build_module()


def committed_manifest(name: str) -> dict:
    path = LAYERS / name / "manifest.json"
    assert path.is_file(), f"{path} is missing: run `make layers` and commit the manifest snapshot"
    return json.loads(path.read_text())


def function_totals(manifests: dict[str, dict]) -> dict[str, int]:
    return {
        fn: build.function_asset_bytes(fn) + sum(manifests[ln]["total_bytes"] for ln in layer_names)
        for fn, layer_names in CONFIG["functions"].items()
    }


def test_limit_is_below_lambdas_hard_limit() -> None:
    assert LIMIT <= 230 * MB < CONFIG["lambda_hard_limit_bytes"] == 262_144_000


@pytest.mark.parametrize("name", sorted(CONFIG["layers"]))
def test_layer_pins_equal_the_project_pins(name: str) -> None:
    assert build.check_requirement_pins(name) == []


@pytest.mark.parametrize("name", sorted(CONFIG["layers"]))
def test_committed_manifest_matches_the_requirements(name: str) -> None:
    manifest = committed_manifest(name)
    assert manifest["arch"] == CONFIG["default_arch"] and manifest["python_version"] == CONFIG["python_version"]
    deduplicated = {d["package"] for d in manifest.get("deduplicated", [])}
    runtime = set(build.RUNTIME_PROVIDED) | set(build.RUNTIME_PROVIDED_DEPS)
    for pkg, version in build.requirement_pins(name).items():
        if pkg in deduplicated or (pkg in runtime and pkg not in manifest["versions"]):
            continue
        assert manifest["versions"].get(pkg) == version, (
            f"{name}: snapshot has {pkg} {manifest['versions'].get(pkg)}, pinned {version}: rerun `make layers`"
        )
    assert not set(manifest["versions"]) & set(build.RUNTIME_PROVIDED), "boto3/botocore come from the Lambda runtime"
    assert manifest["total_bytes"] == sum(manifest["packages"].values()) + manifest["unowned_bytes"]


def test_function_totals_fit_from_committed_manifests() -> None:
    manifests = {name: committed_manifest(name) for name in CONFIG["layers"]}
    for fn, total in function_totals(manifests).items():
        assert total <= LIMIT, f"function {fn}: {total / MB:.1f} MB > {LIMIT / MB:.0f} MB (function asset + layers)"


def test_no_package_is_shipped_twice_to_one_function() -> None:
    manifests = {name: committed_manifest(name) for name in CONFIG["layers"]}
    for fn, layer_names in CONFIG["functions"].items():
        seen: dict[str, str] = {}
        for ln in layer_names:
            for pkg in manifests[ln]["versions"]:
                assert pkg not in seen, f"function {fn}: {pkg} is in layers {seen.get(pkg)} and {ln}"
                seen[pkg] = ln


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIG["layers"]))
def test_committed_layers_ship_bytecode_for_every_module(name: str) -> None:
    """Lambda's /opt is read-only: a module without its .pyc is compiled again by every cold start."""
    bytecode = committed_manifest(name)["bytecode"]
    assert bytecode["python"] == CONFIG["python_version"]
    assert bytecode["invalidation_mode"] == "unchecked-hash"
    assert bytecode["not_compiled"] == []
    assert bytecode["pyc_files"] == bytecode["sources"] > 100


def test_build_layers_for_real_and_recheck(tmp_path: Path) -> None:
    """Downloads the pinned aarch64 wheels from PyPI (~220 MB) and rebuilds every layer (~30 s with a warm cache)."""
    if build.find_python(CONFIG["python_version"]) is None:
        pytest.skip(f"no Python {CONFIG['python_version']} interpreter to compile the layers' bytecode with")
    out = tmp_path / "layers"
    proc = subprocess.run(
        [sys.executable, str(LAYERS / "build.py"), "--all", "--out", str(out), "--no-snapshot"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fresh = {name: json.loads((out / name / "manifest.json").read_text()) for name in CONFIG["layers"]}
    for fn, total in function_totals(fresh).items():
        assert total <= LIMIT, f"function {fn}: {total / MB:.1f} MB"
    for name, manifest in fresh.items():
        committed = committed_manifest(name)
        assert manifest["versions"] == committed["versions"], f"{name}: snapshot is stale, rerun `make layers`"
        drift = abs(manifest["total_bytes"] - committed["total_bytes"]) / committed["total_bytes"]
        assert drift < 0.02, f"{name}: {manifest['total_bytes']} bytes vs snapshot {committed['total_bytes']}"
        assert list((out / name / "python").rglob("*.duckdb_extension")) or name != "query"
        site = out / name / "python"
        sources = [p for p in site.rglob("*.py") if "__pycache__" not in p.parts]
        assert [p for p in sources if not build.pyc_path(p, CONFIG["python_version"]).is_file()] == []
        assert manifest["bytecode"]["pyc_files"] == len(sources) == len(list(site.rglob("*.pyc")))


# --------------------------------------------------------------------------- handler imports vs. layers

# What the python3.12 Lambda runtime puts on sys.path besides the standard library (/var/runtime).
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3", "awslambdaric"}


def _module_file(module: str) -> Path | None:
    base = ROOT / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _eager_imports(tree: ast.Module, module: str, is_package: bool) -> list[str]:
    """Module names imported when the module is imported: top-level statements only, skipping
    ``if TYPE_CHECKING:`` blocks and ``try: ... except ImportError`` (optional imports); imports inside
    functions are lazy and do not count."""
    found: list[str] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                found.append(target)
                found.extend(f"{target}.{a.name}" for a in node.names)  # may be submodules
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                handled = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
                if not any("ImportError" in h or "ModuleNotFoundError" in h for h in handled):
                    visit(node.body)
                visit(node.finalbody)
            elif isinstance(node, (ast.With,)):
                visit(node.body)

    visit(tree.body)
    return found


def third_party_imports(handler: Path) -> dict[str, str]:
    """Top-level third-party modules a handler imports eagerly -> the stratum module that imports it."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    seen: set[str] = set()
    result: dict[str, str] = {}
    queue: list[tuple[str, Path, bool]] = [("handler", handler, False)]
    while queue:
        module, path, is_package = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _eager_imports(ast.parse(path.read_text()), module, is_package):
            top = name.split(".")[0]
            if top == "stratum":
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                    sub = ".".join(parts[:i])
                    f = _module_file(sub)
                    if f is not None:
                        queue.append((sub, f, f.name == "__init__.py"))
            elif top and top not in stdlib:
                result.setdefault(top, module)
    return result


@pytest.mark.parametrize("function", sorted(CONFIG["functions"]))
def test_handler_imports_are_shipped_by_its_layers(function: str) -> None:
    """Static check (no import, any host arch): every third-party module the handler imports at import time,
    directly or through stratum, is in one of the function's layers or in the Lambda runtime."""
    handler = ROOT / "functions" / function / "handler.py"
    if not handler.is_file():
        pytest.skip(f"functions/{function}/handler.py does not exist yet")
    shipped = {m for ln in CONFIG["functions"][function] for m in committed_manifest(ln).get("modules", [])}
    missing = {top: via for top, via in third_party_imports(handler).items() if top not in shipped | RUNTIME_MODULES}
    assert not missing, (
        f"functions/{function}/handler.py imports modules that its layers {CONFIG['functions'][function]} do not "
        f"ship (module -> first stratum module importing it eagerly): {missing}. Import them lazily or add them "
        "to a layer."
    )
