"""The local signing key: one per data directory, whoever creates it first; signatures bind their purpose."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

from stratum.auth import signed_urls


def test_racing_callers_share_one_key(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: signed_urls.local_secret(tmp_path), range(32)))
    assert len(keys) == 1 and len(next(iter(keys))) == 32
    assert stat.S_IMODE((tmp_path / signed_urls.KEY_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [signed_urls.KEY_FILE]  # no temp file left


def test_signature_binds_purpose_and_parts(tmp_path):
    key = signed_urls.local_secret(tmp_path)
    sig = signed_urls.sign(key, "upload", "ws1", "job_1", 100)
    assert signed_urls.verify(key, sig, "upload", "ws1", "job_1", 100)
    assert not signed_urls.verify(key, sig, "export", "ws1", "job_1", 100)
    assert not signed_urls.verify(key, sig, "upload", "ws2", "job_1", 100)
    assert not signed_urls.verify(key, "é" * 64, "upload", "ws1", "job_1", 100)  # non-ASCII: False, no crash
