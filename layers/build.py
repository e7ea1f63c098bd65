#!/usr/bin/env python3
"""Build the Lambda layers from manylinux wheels, without Docker.

Usage::

    .venv/bin/python layers/build.py --all                 # every layer, arm64 (what `make layers` runs)
    .venv/bin/python layers/build.py query web             # some layers
    .venv/bin/python layers/build.py --all --arch x86_64 --out /tmp/layers-x86 --smoke-python python3.12
    .venv/bin/python layers/build.py --all --compile-python ~/.pyenv/versions/3.12.1/bin/python3.12

For each layer ``layers/<name>/requirements.txt`` this

1. checks that every pin equals the project's pins (``pyproject.toml`` and ``requirements/dev.lock``);
2. runs ``pip install --platform manylinux2014_<arch> --platform manylinux_2_28_<arch> --implementation cp
   --python-version 3.12 --abi cp312 --only-binary=:all: --no-compile --target <out>/<name>/python``;
3. checks that every installed distribution has the locked version;
4. prunes what Lambda does not need (console scripts, tests, ``__pycache__``, typing stubs, C/Cython sources and
   headers, static libraries, pyarrow's include/src/tests, Arrow Flight, pyarrow's C++ test module, the
   link-time copies of ``libarrow_python*.so``) and anything the python3.12 runtime already provides
   (boto3/botocore/s3transfer);
5. removes packages that two layers of one function would both ship (Lambda extracts every layer into
   ``/opt``; a duplicate only costs space and one copy silently shadows the other);
6. strips ``.so`` files with a strip that understands the target architecture (``llvm-strip`` on an x86_64
   host for aarch64); never ``.duckdb_extension`` files (they are signed);
7. checks that no remaining ELF file needs a library that was pruned;
8. compiles every module to bytecode with an interpreter of the target Python version (``--compile-python``,
   else ``python<version>`` found on PATH or in pyenv): ``__pycache__/*.cpython-<ver>.pyc``, hash-based and
   unchecked (``--invalidation-mode unchecked-hash``), so the zip's timestamps do not matter. Lambda's /opt is
   read-only: without them every cold start compiles each module it imports (~20 % of the API's cold start);
9. writes ``<out>/<name>/manifest.json`` (bytes per package, total, bytecode) and, for the default arm64 build
   into ``layers/build``, a committed snapshot ``layers/<name>/manifest.json`` that tests read without building;
10. prints the size of each function (function asset + its layers) and fails above ``limit_bytes``.

``layers/layers.json`` is the single source of truth for the layer list and which function gets which layers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

LAYERS_DIR = Path(__file__).resolve().parent
ROOT = LAYERS_DIR.parent
CONFIG_PATH = LAYERS_DIR / "layers.json"
DEFAULT_OUT = LAYERS_DIR / "build"
MB = 1_000_000
PYTHON_VERSION = "3.12"  # target interpreter for dependency markers; set from --python-version in main()

ARCHES = {
    # name used by Lambda/CDK -> (manylinux platform suffix, ELF machine as printed by readelf)
    "arm64": ("aarch64", "AArch64"),
    "x86_64": ("x86_64", "Advanced Micro Devices X86-64"),
}

# Provided by the python3.12 Lambda runtime; shipping them only adds size (and version skew). aws-xray-sdk
# (powertools[tracer]) requires botocore, so pip installs it; it is removed again here.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# botocore's own dependencies, also in the runtime: removed only when nothing left in the layer requires them.
RUNTIME_PROVIDED_DEPS = ("python-dateutil", "six", "urllib3", "jmespath")

# Directory names removed anywhere in a layer.
PRUNE_DIR_NAMES = {"__pycache__", "tests"}
# Paths (relative to python/) removed entirely.
PRUNE_PATHS = ("bin", "pyarrow/include", "pyarrow/src", "pyarrow/tests", "numpy/_core/include", "numpy/f2py/src")
# File suffixes removed anywhere: bytecode compiled by the build host, typing stubs, sources, headers, static libs.
PRUNE_SUFFIXES = (".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cpp", ".a")
# Glob patterns (relative to python/): Arrow Flight (RPC; Stratum never uses it) and pyarrow's C++ test module.
PRUNE_GLOBS = (
    "pyarrow/libarrow_flight.so*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_flight.*.so",
    "pyarrow/_flight.py",
    "pyarrow/flight.py",
    "pyarrow/_pyarrow_cpp_tests.*.so",
)
# Never modified, never stripped: signed DuckDB extensions.
PROTECTED_SUFFIXES = (".duckdb_extension",)


# --------------------------------------------------------------------------------------------- configuration


def load_config() -> dict:
    return json.loads(CONFIG_PATH.read_text())


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if not m:
            raise SystemExit(
                f"unpinned or unparsable requirement {line!r}: every layer requirement must be `name==version`"
            )
        pins[canonical(m.group(1))] = m.group(3)
    return pins


def project_pins() -> tuple[dict[str, str], dict[str, str]]:
    """(pins from pyproject.toml [project.dependencies], pins from requirements/dev.lock)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    direct = parse_pins(list(pyproject["project"]["dependencies"]))
    lock = parse_pins((ROOT / "requirements" / "dev.lock").read_text().splitlines())
    return direct, lock


def requirement_pins(name: str) -> dict[str, str]:
    return parse_pins((LAYERS_DIR / name / "requirements.txt").read_text().splitlines())


def check_requirement_pins(name: str) -> list[str]:
    """Problems with layers/<name>/requirements.txt against the project's pins (empty list = fine)."""
    direct, lock = project_pins()
    problems = []
    for pkg, version in requirement_pins(name).items():
        for source, pins in (("pyproject.toml", direct), ("requirements/dev.lock", lock)):
            if pkg in pins and pins[pkg] != version:
                problems.append(f"layers/{name}/requirements.txt pins {pkg}=={version} but {source} pins {pins[pkg]}")
        if pkg not in lock:
            problems.append(f"layers/{name}/requirements.txt pins {pkg}, which requirements/dev.lock does not lock")
    return problems


# ------------------------------------------------------------------------------------------ installed packages


@dataclass
class Dist:
    name: str
    version: str
    dist_info: Path
    files: list[Path] = field(default_factory=list)  # absolute paths inside the layer (from RECORD)
    requires: set[str] = field(default_factory=set)  # canonical names, for the target Python, no extras


def _requires(meta: str, python_version: str) -> set[str]:
    from packaging.requirements import Requirement  # pip's own dependency, always present

    names = set()
    for line in re.findall(r"^Requires-Dist:\s*(.+)$", meta, re.M):
        req = Requirement(line.strip())
        env = {"python_version": python_version, "python_full_version": f"{python_version}.0", "extra": ""}
        if req.marker is None or req.marker.evaluate(env):
            names.add(canonical(req.name))
    return names


def installed_dists(site: Path) -> dict[str, Dist]:
    dists: dict[str, Dist] = {}
    for info in sorted(site.glob("*.dist-info")):
        meta = (info / "METADATA").read_text(errors="replace")
        name = re.search(r"^Name:\s*(.+)$", meta, re.M).group(1).strip()
        version = re.search(r"^Version:\s*(.+)$", meta, re.M).group(1).strip()
        dist = Dist(canonical(name), version, info, requires=_requires(meta, PYTHON_VERSION))
        record = info / "RECORD"
        if record.exists():
            for row in record.read_text().splitlines():
                rel = row.split(",", 1)[0]
                if not rel:
                    continue
                p = (site / rel).resolve()
                if p.is_relative_to(site.resolve()):
                    dist.files.append(p)
        dist.files.append(info.resolve())
        dists[dist.name] = dist
    return dists


def remove_dist(dist: Dist) -> int:
    """Delete a distribution's files (and then-empty directories). Returns bytes removed."""
    removed = 0
    dirs = set()
    for p in dist.files:
        if p.is_file():
            removed += p.stat().st_size
            p.unlink()
            dirs.add(p.parent)
        elif p.is_dir():
            removed += tree_bytes(p)
            shutil.rmtree(p)
    for d in sorted(dirs, key=lambda x: len(x.parts), reverse=True):
        for sub in [d, *d.parents]:
            try:
                sub.rmdir()  # only succeeds when empty
            except OSError:
                break
    return removed


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# ---------------------------------------------------------------------------------------------------- pip


def pip_install(name: str, arch: str, python_version: str, site: Path) -> None:
    machine = ARCHES[arch][0]
    abi = "cp" + python_version.replace(".", "")
    cmd = [
        sys.executable, "-m", "pip", "install",
        "--disable-pip-version-check", "--no-input", "--no-compile", "--quiet",
        "--platform", f"manylinux2014_{machine}",
        "--platform", f"manylinux_2_28_{machine}",
        "--implementation", "cp",
        "--python-version", python_version,
        "--abi", abi,
        "--only-binary=:all:",
        "--target", str(site),
        "-r", str(LAYERS_DIR / name / "requirements.txt"),
    ]  # fmt: skip
    print(f"[{name}] pip install ({arch}, cp{python_version})", flush=True)
    subprocess.run(cmd, check=True)


# -------------------------------------------------------------------------------------------------- ELF


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_files(site: Path) -> list[Path]:
    return [
        p
        for p in sorted(site.rglob("*"))
        if p.is_file() and not p.is_symlink() and not p.name.endswith(PROTECTED_SUFFIXES) and is_elf(p)
    ]


def readelf(args: list[str], path: Path) -> str:
    return subprocess.run(["readelf", *args, "-W", str(path)], check=True, capture_output=True, text=True).stdout


def elf_needed(path: Path) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf(["-d"], path))


def elf_soname(path: Path) -> str | None:
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", readelf(["-d"], path))
    return m.group(1) if m else None


def elf_machine(path: Path) -> str:
    m = re.search(r"Machine:\s+(.+)", readelf(["-h"], path))
    return m.group(1).strip() if m else "?"


def elf_dynsym_count(path: Path) -> int:
    return len(re.findall(r"^\s*\d+:", readelf(["--dyn-syms"], path), re.M))


def is_stripped(path: Path) -> bool:
    sections = readelf(["-S"], path)
    return ".symtab" not in sections and ".debug_" not in sections


def load_image(path: Path) -> list[tuple]:
    """What the dynamic loader maps: (vaddr, memsz, filesz, flags, align, sha256 of the file bytes) per PT_LOAD.

    Parsed directly (ELF64 little-endian: both aarch64 and x86_64), so it works for any target on any host.
    """
    data = bytearray(path.read_bytes())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not an ELF64 little-endian file")
    # The first PT_LOAD usually maps the ELF header, whose section-header fields (e_shoff, e_shentsize, e_shnum,
    # e_shstrndx) legitimately change when sections are removed; the loader never reads them.
    data[0x28:0x30] = bytes(8)
    data[0x3A:0x40] = bytes(6)
    (e_phoff,) = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize
        )
        if p_type == 1:  # PT_LOAD
            digest = hashlib.sha256(data[p_offset : p_offset + p_filesz]).hexdigest()
            aligned = p_align <= 1 or (p_vaddr - p_offset) % p_align == 0
            segments.append((p_vaddr, p_memsz, p_filesz, p_flags, p_align, digest, aligned))
    return segments


def strip_is_safe(original: Path, stripped: Path) -> bool:
    """A stripped copy may replace the original only if the loaded image is byte-identical.

    Libraries repaired by auditwheel were edited by patchelf, which appends PT_LOAD segments that strip tools
    mishandle: llvm-strip moved numpy's _multiarray_umath segment to an offset that is not page-aligned ("ELF
    load command address/offset not page-aligned" at import), GNU strip truncated it. Such files stay unstripped.
    """
    try:
        before, after = load_image(original), load_image(stripped)
        return (
            before == after
            and all(seg[-1] for seg in after)
            and elf_needed(original) == elf_needed(stripped)
            and elf_dynsym_count(original) == elf_dynsym_count(stripped)
        )
    except (ValueError, struct.error, subprocess.CalledProcessError):
        return False


def find_strip(arch: str) -> tuple[str | None, str]:
    """A strip binary that understands the target architecture.

    GNU strip from an x86_64 host's binutils cannot read AArch64 objects ("Unable to recognise the format of
    the input file"); llvm-strip handles every ELF target. Each stripped file is verified (strip_is_safe).
    """
    host_matches = platform.machine() == ARCHES[arch][0]
    candidates = ["llvm-strip", f"{ARCHES[arch][0]}-linux-gnu-strip"] + (["strip"] if host_matches else [])
    for tool in candidates:
        path = shutil.which(tool)
        if path:
            return path, tool
    return None, f"no strip for {ARCHES[arch][1]} ELF found (tried {', '.join(candidates)}); .so files left unstripped"


# ------------------------------------------------------------------------------------------------- pruning


@dataclass
class PruneReport:
    removed_bytes: dict[str, int] = field(default_factory=dict)
    removed_libs: set[str] = field(default_factory=set)  # basenames of deleted shared libraries

    def add(self, rule: str, path: Path) -> None:
        size = tree_bytes(path)
        if path.is_dir():
            for p in path.rglob("*.so*"):
                self.removed_libs.add(p.name)
            shutil.rmtree(path)
        else:
            if ".so" in path.name:
                self.removed_libs.add(path.name)
            path.unlink()
        self.removed_bytes[rule] = self.removed_bytes.get(rule, 0) + size


def prune(site: Path, report: PruneReport) -> None:
    dists = installed_dists(site)
    for name in RUNTIME_PROVIDED:
        if name in dists:
            report.removed_bytes[f"runtime-provided {name}"] = remove_dist(dists.pop(name))
    changed = True
    while changed:  # then botocore's dependencies that nothing else in the layer needs
        changed = False
        for name in RUNTIME_PROVIDED_DEPS:
            if name in dists and not any(name in d.requires for d in dists.values()):
                report.removed_bytes[f"runtime-provided {name}"] = remove_dist(dists.pop(name))
                changed = True
    for rel in PRUNE_PATHS:
        p = site / rel
        if p.exists():
            report.add(f"path {rel}", p)
    for pattern in PRUNE_GLOBS:
        for p in sorted(site.glob(pattern)):
            report.add(f"glob {pattern}", p)
    for p in sorted(site.rglob("*"), key=lambda x: len(x.parts)):
        if not p.exists() or p.is_symlink():
            continue
        if p.is_dir() and p.name in PRUNE_DIR_NAMES:
            report.add(f"dir {p.name}/", p)
        elif p.is_file() and p.name.endswith(PRUNE_SUFFIXES) and not p.name.endswith(PROTECTED_SUFFIXES):
            report.add(f"*{p.suffix}", p)
    dedupe_library_copies(site, report)
    remove_empty_dirs(site)


def dedupe_library_copies(site: Path, report: PruneReport) -> None:
    """Wheels cannot hold symlinks, so libfoo.so / libfoo.so.N / libfoo.so.N.M.P arrive as three identical files.

    The dynamic loader only opens the SONAME (what NEEDED entries name); the other names exist for linking C++
    extensions at build time. Keep the SONAME copy, delete identical copies nobody NEEDs.
    """
    needed = {n for f in elf_files(site) for n in elf_needed(f)}
    by_dir: dict[tuple[Path, str], list[Path]] = {}
    for f in elf_files(site):
        if ".so" not in f.name:
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        by_dir.setdefault((f.parent, digest), []).append(f)
    for group in by_dir.values():
        if len(group) < 2:
            continue
        soname = elf_soname(group[0])
        keep = next((f for f in group if f.name == soname), None)
        if keep is None:
            continue
        for f in group:
            if f is not keep and f.name not in needed:
                report.add("duplicate library copy (not the SONAME)", f)


def remove_empty_dirs(site: Path) -> None:
    for d in sorted((p for p in site.rglob("*") if p.is_dir()), key=lambda x: len(x.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass


def strip_libraries(site: Path, arch: str, no_strip: bool) -> dict:
    candidates = [f for f in elf_files(site) if ".so" in f.name and not is_stripped(f)]
    if no_strip:
        return {"tool": None, "note": "--no-strip", "files": 0, "skipped": [], "saved_bytes": 0}
    if not candidates:
        return {"tool": None, "note": "no unstripped shared libraries", "files": 0, "skipped": [], "saved_bytes": 0}
    tool, note = find_strip(arch)
    if tool is None:
        print(f"  strip: {note}")
        return {"tool": None, "note": note, "files": 0, "skipped": [], "saved_bytes": 0}
    saved, done, skipped = 0, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for f in candidates:
            copy = Path(tmp) / f.name
            shutil.copy2(f, copy)
            proc = subprocess.run([tool, "--strip-unneeded", str(copy)], capture_output=True, text=True)
            if proc.returncode == 0 and strip_is_safe(f, copy):
                saved += f.stat().st_size - copy.stat().st_size
                shutil.copy2(copy, f)
                done += 1
            else:
                skipped.append(str(f.relative_to(site)))
            copy.unlink(missing_ok=True)
    note = f"{Path(tool).name}: {done} stripped, {len(skipped)} left unstripped (loaded image would change)"
    return {"tool": Path(tool).name, "note": note, "files": done, "skipped": skipped, "saved_bytes": saved}


def check_needed(site: Path, removed_libs: set[str], others: list[Path]) -> None:
    """Fail if an ELF file still NEEDs a library that pruning deleted and no layer of the function provides."""
    present = {p.name for s in [site, *others] for p in s.rglob("*.so*")}
    missing = []
    for f in elf_files(site):
        for lib in elf_needed(f):
            if lib in removed_libs and lib not in present:
                missing.append(f"{f.relative_to(site)} needs pruned {lib}")
    if missing:
        raise SystemExit("pruning removed libraries that are still needed:\n  " + "\n  ".join(missing))


# ------------------------------------------------------------------------------------------- deduplication


def dedupe_across_layers(out: Path, config: dict) -> list[dict]:
    """Keep a package shared by several layers of one function in exactly one of them.

    The owner is the first layer (in the function's order) that pins the package directly in its
    requirements.txt, else the first layer that contains it. A package is removed from a layer only if every
    function using that layer also gets the owner layer.
    """
    actions = []
    users: dict[str, list[str]] = {}
    for fn, layer_names in config["functions"].items():
        for ln in layer_names:
            users.setdefault(ln, []).append(fn)
    for fn, layer_names in config["functions"].items():
        sites = {ln: out / ln / "python" for ln in layer_names}
        if len(layer_names) < 2:
            continue
        if not all(s.is_dir() for s in sites.values()):
            print(f"  dedupe for function {fn}: skipped, not all of {layer_names} are built in {out}")
            continue
        dists = {ln: installed_dists(s) for ln, s in sites.items()}
        counts: dict[str, int] = {}
        for d in dists.values():
            for pkg in d:
                counts[pkg] = counts.get(pkg, 0) + 1
        for pkg in sorted(p for p, n in counts.items() if n > 1):
            holders = [ln for ln in layer_names if pkg in dists[ln]]
            if len(holders) < 2:
                continue
            versions = {dists[ln][pkg].version for ln in holders}
            if len(versions) > 1:
                raise SystemExit(f"function {fn}: {pkg} has different versions in layers {holders}: {versions}")
            direct = [ln for ln in holders if pkg in requirement_pins(ln)]
            owner = (direct or holders)[0]
            for ln in holders:
                if ln == owner:
                    continue
                blockers = [u for u in users[ln] if owner not in config["functions"][u]]
                if blockers:
                    print(f"  keep {pkg} in both {owner} and {ln}: functions {blockers} use {ln} without {owner}")
                    continue
                freed = remove_dist(dists[ln][pkg])
                actions.append({"function": fn, "package": pkg, "kept_in": owner, "removed_from": ln, "bytes": freed})
                print(f"  dedupe: {pkg} kept in {owner}, removed from {ln} ({freed / MB:.1f} MB)")
    return actions


# ------------------------------------------------------------------------------------------------- bytecode


def find_python(version: str, explicit: str | None = None) -> str | None:
    return _infra_assets().find_python(version, explicit)


def compile_bytecode(site: Path, python: str, version: str) -> dict:
    return _infra_assets().compile_bytecode(site, python, version)


def pyc_path(source: Path, version: str) -> Path:
    return _infra_assets().pyc_path(source, version)


def _pyc_source(path: Path) -> Path | None:
    """``pkg/__pycache__/mod.cpython-312.pyc`` -> ``pkg/mod.py`` (its owner owns the bytecode too)."""
    if path.suffix != ".pyc" or path.parent.name != "__pycache__":
        return None
    return path.parent.parent / f"{path.name.split('.', 1)[0]}.py"


# ------------------------------------------------------------------------------------------------ manifests


def layer_manifest(name: str, site: Path, arch: str, python_version: str, extra: dict) -> dict:
    dists = installed_dists(site)
    owned: dict[Path, str] = {}
    for d in dists.values():
        for p in d.files:
            if p.is_file():
                owned.setdefault(p, d.name)
            elif p.is_dir():
                for q in p.rglob("*"):
                    if q.is_file():
                        owned.setdefault(q.resolve(), d.name)
    packages: dict[str, int] = {d: 0 for d in sorted(dists)}
    total = unowned = 0
    for p in site.rglob("*"):
        if p.is_file() and not p.is_symlink():
            size = p.stat().st_size
            total += size
            source = _pyc_source(p)
            owner = owned.get((source or p).resolve())
            if owner is None:
                unowned += size
            else:
                packages[owner] += size
    return {
        "layer": name,
        "arch": arch,
        "modules": top_level_modules(site),
        "python_version": python_version,
        "built": dt.date.today().isoformat(),
        "total_bytes": total,
        "total_mb": round(total / MB, 1),
        "packages": dict(sorted(packages.items(), key=lambda kv: -kv[1])),
        "unowned_bytes": unowned,
        "versions": {d.name: d.version for d in sorted(dists.values(), key=lambda d: d.name)},
        **extra,
    }


def top_level_modules(site: Path) -> list[str]:
    """Importable top-level names in a layer (packages, modules, extension modules)."""
    names = set()
    for p in site.iterdir():
        if p.name.endswith((".dist-info", ".libs")) or p.name.startswith((".", "_distutils_hack")):
            continue
        if p.is_dir() and (any(p.rglob("*.py")) or any(p.rglob("*.so"))):  # packages, namespace packages too
            names.add(p.name)
        elif p.suffix == ".py":
            names.add(p.stem)
        elif ".so" in p.name and p.name.split(".")[0]:
            names.add(p.name.split(".")[0])
    return sorted(names)


def _infra_assets():
    """infra/stratum_infra/assets.py (standard library only), loaded by path: it decides what an asset holds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_stratum_assets", ROOT / "infra" / "stratum_infra" / "assets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# the bytecode of a module is ~1.5x its source (stratum, Python 3.12); sized with headroom, without compiling
PYC_PER_SOURCE_BYTE = 2


def function_asset_bytes(function: str) -> int:
    """Unzipped size of the function asset: src/stratum (without dev tools) + functions/<name>/*.py, and their
    bytecode (at most PYC_PER_SOURCE_BYTE times the size of the .py files)."""
    files = [
        *_infra_assets().shipped_package_files(ROOT / "src" / "stratum"),
        *(ROOT / "functions" / function).glob("*.py"),
    ]
    total = sum(p.stat().st_size for p in files)
    return total + PYC_PER_SOURCE_BYTE * sum(p.stat().st_size for p in files if p.suffix == ".py")


def report_functions(config: dict, sizes: dict[str, int]) -> bool:
    ok = True
    limit = config["limit_bytes"]
    print("\nfunction totals (function asset + layers, unzipped):")
    for fn, layer_names in config["functions"].items():
        if not all(ln in sizes for ln in layer_names):
            print(f"  {fn}: not all of {layer_names} known")
            continue
        asset = function_asset_bytes(fn)
        total = asset + sum(sizes[ln] for ln in layer_names)
        parts = " + ".join(f"{ln} {sizes[ln] / MB:.1f}" for ln in layer_names)
        flag = "OK" if total <= limit else "OVER LIMIT"
        print(f"  {fn:<7} {total / MB:6.1f} MB = asset {asset / MB:.2f} + {parts}  [{flag}, limit {limit / MB:.0f} MB]")
        ok &= total <= limit
    return ok


# ----------------------------------------------------------------------------------------------------- smoke

SMOKE_CODE = {
    "ingest": """
import tempfile, pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq, numpy as np
d = tempfile.mkdtemp()
t = pa.table({"lot": ["A", "B"], "x": np.arange(2, dtype="float64")})
ds.write_dataset(t, d, format="parquet", partitioning=ds.partitioning(pa.schema([("lot", pa.string())]), flavor="hive"))
assert ds.dataset(d, format="parquet", partitioning="hive").to_table().num_rows == 2
""",
    "query": """
import glob, os, io, duckdb, duckdb_extension_httpfs, numpy as np
from PIL import Image
pkg = os.path.dirname(duckdb_extension_httpfs.__file__)
ext = glob.glob(os.path.join(pkg, "**", "*.duckdb_extension"), recursive=True)
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
con.execute(f"LOAD '{ext[0]}'")
assert con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone()[0]
buf = io.BytesIO(); Image.fromarray(np.zeros((4, 4), dtype="uint8")).save(buf, format="PNG"); assert buf.tell() > 0
import nanoarrow as na
from nanoarrow.ipc import StreamWriter
ipc = io.BytesIO()
with StreamWriter.from_writable(ipc) as w: w.write_stream(con.sql("SELECT range AS i FROM range(3)"))
assert len(na.ArrayStream.from_readable(ipc.getvalue()).read_all()) == 3
""",
    "web": """
import aws_xray_sdk.core
from fastapi import FastAPI
from mangum import Mangum
app = FastAPI()
@app.get("/ping")
def ping(n: int) -> dict: return {"n": n}
handler = Mangum(app, lifespan="off")
""",
}


def runtime_standin(out: Path, arch: str, python_version: str) -> Path:
    """boto3 + botocore as the Lambda runtime provides them (/var/runtime), for the smoke imports."""
    site = out / ".runtime-standin"
    if not (site / "botocore").is_dir():
        _, lock = project_pins()
        machine = ARCHES[arch][0]
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-compile",
                "--quiet", "--platform", f"manylinux2014_{machine}", "--platform", f"manylinux_2_28_{machine}",
                "--implementation", "cp", "--python-version", python_version, "--only-binary=:all:",
                "--target", str(site), f"boto3=={lock['boto3']}",
            ],
            check=True,
        )  # fmt: skip
    return site


def smoke(config: dict, out: Path, python: str, layer_names: list[str], arch: str, python_version: str) -> None:
    """Import every layer of each function together with python -S, the way Lambda's sys.path has them:
    /opt/python (the layers, in order), then /var/runtime (boto3/botocore, here a stand-in)."""
    standin = runtime_standin(out, arch, python_version)
    for fn, fn_layers in config["functions"].items():
        if not set(fn_layers) <= set(layer_names):
            continue
        paths = [str(out / ln / "python") for ln in fn_layers] + [str(standin)]
        imports = [m for ln in fn_layers for m in config["layers"][ln].get("smoke_imports", [])]
        code = "".join(f"import {m}\n" for m in imports) + "".join(SMOKE_CODE.get(ln, "") for ln in fn_layers)
        env = {  # as on Lambda, nothing is written into the layers (its /opt is read-only)
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(paths),
            "HOME": tempfile.gettempdir(),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([python, "-S", "-c", code], cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"smoke test for function {fn} failed:\n{proc.stderr[-4000:]}")
        print(f"  smoke {fn}: imported {len(imports)} modules and ran checks with {python} -S")
        # The real handler module, importable from its asset layout (handler.py + stratum) plus the layers:
        # catches a dependency that the handler imports but no layer ships.
        handler = ROOT / "functions" / fn / "handler.py"
        if not handler.is_file():
            print(f"  smoke {fn}: {handler.relative_to(ROOT)} does not exist yet, handler import skipped")
            continue
        env["PYTHONPATH"] = os.pathsep.join([str(handler.parent), str(ROOT / "src"), *paths])
        env["AWS_DEFAULT_REGION"] = "us-east-1"
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [python, "-S", "-c", "import handler"], cwd=tmp, env=env, capture_output=True, text=True
            )
        if proc.returncode != 0:
            raise SystemExit(f"importing functions/{fn}/handler.py with its layers failed:\n{proc.stderr[-4000:]}")
        print(f"  smoke {fn}: functions/{fn}/handler.py imports with only its layers (+ runtime boto3)")


# ------------------------------------------------------------------------------------------------------ main


def build_layer(name: str, out: Path, arch: str, python_version: str) -> PruneReport:
    problems = check_requirement_pins(name)
    if problems:
        raise SystemExit("\n".join(problems))
    layer_dir = out / name
    site = layer_dir / "python"
    if layer_dir.exists():
        shutil.rmtree(layer_dir)
    site.mkdir(parents=True)
    pip_install(name, arch, python_version, site)

    _, lock = project_pins()
    wrong = [
        f"{d.name}=={d.version} (dev.lock: {lock[d.name]})"
        for d in installed_dists(site).values()
        if d.name in lock and lock[d.name] != d.version
    ]
    unlocked = [f"{d.name}=={d.version}" for d in installed_dists(site).values() if d.name not in lock]
    if wrong or unlocked:
        raise SystemExit(f"[{name}] installed versions differ from requirements/dev.lock: {wrong + unlocked}")

    before = tree_bytes(site)
    report = PruneReport()
    prune(site, report)
    print(f"[{name}] {before / MB:.1f} MB installed, pruned {(before - tree_bytes(site)) / MB:.1f} MB")
    return report


def main(argv: list[str] | None = None) -> int:
    config = load_config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"layers to build: {', '.join(config['layers'])}")
    parser.add_argument("--all", action="store_true", help="build every layer")
    parser.add_argument("--arch", choices=sorted(ARCHES), default=config["default_arch"])
    parser.add_argument("--python-version", default=config["python_version"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: layers/build)")
    parser.add_argument("--no-strip", action="store_true", help="do not strip .so files")
    parser.add_argument(
        "--no-snapshot", action="store_true", help="do not update the committed layers/<name>/manifest.json"
    )
    parser.add_argument(
        "--smoke-python",
        help="an interpreter of the target Python version and architecture: import the built layers with it",
    )
    parser.add_argument(
        "--compile-python",
        help="an interpreter of the target Python version to compile the bytecode with (any architecture; "
        "default: --smoke-python, this one, python<version> on PATH or from pyenv)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="ship sources only (every cold start then compiles them)"
    )
    args = parser.parse_args(argv)
    global PYTHON_VERSION
    PYTHON_VERSION = args.python_version

    names = list(config["layers"]) if args.all else args.names
    unknown = [n for n in names if n not in config["layers"]]
    if not names or unknown:
        parser.error(
            f"name layers ({', '.join(config['layers'])}) or pass --all" + (f"; unknown: {unknown}" if unknown else "")
        )
    out = args.out.resolve()
    snapshot = not args.no_snapshot and out == DEFAULT_OUT.resolve() and args.arch == config["default_arch"]

    compile_python = None
    if not args.no_compile:
        compile_python = find_python(args.python_version, args.compile_python or args.smoke_python)
        if compile_python is None:
            parser.error(
                f"compiling the layers' bytecode needs a Python {args.python_version} interpreter: pass "
                "--compile-python PATH (or --no-compile to ship sources only)"
            )
    reports = {n: build_layer(n, out, args.arch, args.python_version) for n in names}
    print("deduplicating across the layers of each function")
    dedupe = dedupe_across_layers(out, config)

    sizes: dict[str, int] = {}
    for name in config["layers"]:
        manifest_path = out / name / "manifest.json"
        if name not in names:
            if manifest_path.exists():
                sizes[name] = json.loads(manifest_path.read_text())["total_bytes"]
            continue
        site = out / name / "python"
        print(f"[{name}] strip")
        strip = strip_libraries(site, args.arch, args.no_strip)
        others = [out / o / "python" for fn, ls in config["functions"].items() if name in ls for o in ls if o != name]
        check_needed(site, reports[name].removed_libs, [o for o in others if o.is_dir()])
        bytecode = None
        if compile_python is not None:
            bytecode = compile_bytecode(site, compile_python, args.python_version)
            print(
                f"[{name}] bytecode: {bytecode['pyc_files']} .pyc ({bytecode['pyc_bytes'] / MB:.1f} MB, "
                f"{bytecode['invalidation_mode']}) for {bytecode['sources']} modules; "
                f"not compiled: {bytecode['not_compiled'] or 'none'}"
            )
        manifest = layer_manifest(
            name,
            site,
            args.arch,
            args.python_version,
            {
                "pruned_bytes": dict(sorted(reports[name].removed_bytes.items())),
                "deduplicated": [a for a in dedupe if a["removed_from"] == name],
                "strip": strip,
                "bytecode": bytecode,
            },
        )
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        if snapshot:
            (LAYERS_DIR / name / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        sizes[name] = manifest["total_bytes"]
        top = ", ".join(f"{k} {v / MB:.1f}" for k, v in list(manifest["packages"].items())[:5])
        print(f"[{name}] {manifest['total_mb']} MB ({top} ...); strip: {strip['note']}")

    if args.smoke_python:
        host = platform.machine() == ARCHES[args.arch][0]
        if host:
            smoke(config, out, args.smoke_python, names, args.arch, args.python_version)
        else:
            print(f"  smoke: skipped, {args.arch} layers cannot be imported on a {platform.machine()} host")
    ok = report_functions(config, sizes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
