"""Docker-free Lambda assets.

Function code: a plain pre-synth assembly step copies ``src/stratum/`` (the package without bytecode and without
the development tools in ``stratum/devtools/``) and
``functions/<name>/*.py`` into ``<build dir>/functions/<name>/``; the function asset is that folder. On Lambda
the code directory is on ``sys.path``, so ``handler.py`` sits at the top level and ``import stratum`` resolves to
the shipped package, exactly as it does in the editable dev install. No sys.path edits, no Docker.

Layers: ``layers/build.py`` (``make layers``) builds ``layers/build/<name>/python``; the layer asset is
``layers/build/<name>``. When a layer has not been built (CI unit tests, a fresh clone), a small placeholder is
used so synth still works, and the layer gets an *error* annotation: ``python app.py`` prints it and the CDK CLI
refuses ``cdk deploy`` ("Found errors") until ``make layers`` has been run.

Bytecode: Lambda's code folder and /opt are read-only, so a module shipped without its ``.pyc`` is compiled
again by every cold start. Function assets (when the stack is given an interpreter of the runtime's version)
and layers (``layers/build.py``) ship ``__pycache__/*.cpython-<ver>.pyc`` compiled with
``--invalidation-mode unchecked-hash``: valid whatever timestamps the zip gives the files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EXCLUDED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store")
# Subpackages of stratum that never ship: benchmarks, the demo, the synthetic STDF generators.
DEV_ONLY_PACKAGES = ("devtools",)


def package_ignore(package: Path):
    """The copytree ``ignore`` callable for the stratum package at ``package``."""
    top = str(package)

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = set(EXCLUDED(directory, names))
        if directory == top:
            skip.update(n for n in names if n in DEV_ONLY_PACKAGES)
        return skip

    return ignore


def shipped_package_files(package: Path) -> list[Path]:
    """The files of the stratum package that a function asset holds (what ``package_ignore`` keeps)."""
    dev = {package / name for name in DEV_ONLY_PACKAGES}
    return sorted(
        p
        for p in package.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".pyo")
        and p.name != ".DS_Store"
        and not any(p.is_relative_to(d) for d in dev)
    )


BYTECODE_MODE = "unchecked-hash"


def python_version_of(python: str) -> str | None:
    """``"3.12"`` for an interpreter that runs, else None (e.g. a pyenv shim of a version not selected)."""
    try:
        proc = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_python(version: str, explicit: str | None = None) -> str | None:
    """An interpreter of ``version`` to compile bytecode with: ``explicit`` (refused if it is another version),
    else this interpreter, ``python<version>`` on PATH or a pyenv installation of that version."""
    if explicit:
        found = python_version_of(explicit)
        if found != version:
            raise SystemExit(f"{explicit} is Python {found or '(does not run)'}, not {version}")
        return explicit
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [sys.executable, shutil.which(f"python{version}")]
    candidates += [str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)]
    return next((c for c in candidates if c and python_version_of(c) == version), None)


def pyc_path(source: Path, version: str) -> Path:
    """Where CPython ``version`` looks for the bytecode of ``source`` (no optimisation level: Lambda runs
    without -O)."""
    return source.parent / "__pycache__" / f"{source.stem}.cpython-{version.replace('.', '')}.pyc"


def compile_bytecode(site: Path, python: str, version: str) -> dict:
    """Compile every ``.py`` under ``site`` with ``python`` (hash-based, unchecked pycs). A file the interpreter
    cannot compile (none in our layers today) is listed, not fatal: it is imported from source as before."""
    proc = subprocess.run(
        [python, "-m", "compileall", "-q", "-q", "--invalidation-mode", BYTECODE_MODE, str(site)],
        capture_output=True,
        text=True,
    )
    sources = sorted(p for p in site.rglob("*.py") if "__pycache__" not in p.parts)
    missing = [str(p.relative_to(site)) for p in sources if not pyc_path(p, version).is_file()]
    if proc.returncode and not missing:
        raise SystemExit(f"compileall failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    pycs = list(site.rglob("*.pyc"))
    return {
        "python": version,
        "invalidation_mode": BYTECODE_MODE,
        "pyc_files": len(pycs),
        "pyc_bytes": sum(p.stat().st_size for p in pycs),
        "sources": len(sources),
        "not_compiled": missing,
    }


@dataclass(frozen=True)
class FunctionAsset:
    name: str
    path: Path
    handler_file: Path  # the source file the handler module comes from (functions/<name>/handler.py)
    missing: tuple[str, ...]  # project-relative source files that do not exist yet
    bytecode: dict | None = None  # compile_bytecode's report, None when shipped as sources only


def assemble_function_asset(
    name: str,
    project_root: Path,
    build_dir: Path,
    handler_module: str = "handler",
    *,
    bytecode_python: str | None = None,
    python_version: str = "",
) -> FunctionAsset:
    """Copy the stratum package and the function's entry modules into ``build_dir/functions/<name>``, and
    compile their bytecode with ``bytecode_python`` (an interpreter of ``python_version``) when given.

    The folder is rebuilt from scratch on every synth, so deleted source files never linger in an asset.
    """
    package = project_root / "src" / "stratum"
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"the stratum package is missing: {package}/__init__.py")
    fn_dir = project_root / "functions" / name
    dest = build_dir / "functions" / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(package, dest / "stratum", ignore=package_ignore(package))
    for src in sorted(fn_dir.glob("*.py")):
        if src.stem == "stratum":
            raise ValueError(f"{src} would shadow the stratum package inside the asset")
        shutil.copy2(src, dest / src.name)
    # `sam build` (python builder) expects a requirements.txt; dependencies come from the layers.
    (dest / "requirements.txt").write_text("# dependencies are provided by the Lambda layers (layers/)\n")
    handler_file = fn_dir / f"{handler_module}.py"
    missing = () if handler_file.is_file() else (str(handler_file.relative_to(project_root)),)
    bytecode = compile_bytecode(dest, bytecode_python, python_version) if bytecode_python else None
    return FunctionAsset(name=name, path=dest, handler_file=handler_file, missing=missing, bytecode=bytecode)


@dataclass(frozen=True)
class LayerAsset:
    name: str
    path: Path
    built: bool


def layer_asset(name: str, layers_build_dir: Path, placeholder_dir: Path) -> LayerAsset:
    """``layers_build_dir/<name>`` when built, else an (empty) placeholder layer folder."""
    built = layers_build_dir / name
    if (built / "python").is_dir() and any((built / "python").iterdir()):
        return LayerAsset(name=name, path=built, built=True)
    placeholder = placeholder_dir / "layers" / name
    (placeholder / "python").mkdir(parents=True, exist_ok=True)
    (placeholder / "python" / "NOT_BUILT.txt").write_text(
        f"Layer '{name}' was not built when this template was synthesized: run `make layers`.\n"
    )
    return LayerAsset(name=name, path=placeholder, built=False)
