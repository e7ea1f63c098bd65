"""Shared test configuration.

Fixture modules live in tests/fixtures/ and are loaded as plugins so every test directory can use them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"

pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.runtime",
    "tests.fixtures.stack",
    "tests.fixtures.keyscan",
    "tests.fixtures.sdk",
]


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"STDF corpus not found at {CORPUS} (clone ../shared beside the project to run corpus tests)")
    return CORPUS


def corpus_file(name: str) -> Path:
    p = CORPUS / name
    if not p.is_file():
        pytest.skip(f"corpus file {p} is absent (../shared/corpus not beside the project)")
    return p
