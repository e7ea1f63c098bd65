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
"""

from __future__ import annotations

import shutil
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


@dataclass(frozen=True)
class FunctionAsset:
    name: str
    path: Path
    handler_file: Path  # the source file the handler module comes from (functions/<name>/handler.py)
    missing: tuple[str, ...]  # project-relative source files that do not exist yet


def assemble_function_asset(
    name: str, project_root: Path, build_dir: Path, handler_module: str = "handler"
) -> FunctionAsset:
    """Copy the stratum package and the function's entry modules into ``build_dir/functions/<name>``.

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
    return FunctionAsset(name=name, path=dest, handler_file=handler_file, missing=missing)


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
