"""ObjectStore contract: every adapter passes the same suite (local directory; S3 on the moto server)."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import subprocess
import sys
import urllib.parse
import urllib.request

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stratum.storage.local import TMP_PREFIX, LocalObjectStore
from stratum.storage.objectstore import (
    EXPORT_LIFECYCLE,
    LIFECYCLE_TAG,
    InvalidKey,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
)
from stratum.storage.s3 import DUCKDB_CONFIG, S3ObjectStore
from tests.fixtures.aws import SESSION_TOKEN

MiB = 1024 * 1024


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.aws)])
def store(request: pytest.FixtureRequest, tmp_path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [i.key for i in store.list(prefix)]


def visible(store: ObjectStore, key: str) -> bool:
    return store.head(key) is not None or key in keys(store)


def parquet_bytes(n: int = 10, offset: int = 0) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(offset, offset + n))}), buf)
    return buf.getvalue()


def duck() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config=dict(DUCKDB_CONFIG))


# --- basic object operations ----------------------------------------------------------------------
def test_put_get_head(store: ObjectStore) -> None:
    data = b"hello stratum\n" * 100
    info = store.put_bytes("raw/lot1/a.stdf", data, content_type="application/octet-stream")
    assert info.key == "raw/lot1/a.stdf" and info.size == len(data) and info.etag == md5(data)
    assert store.get_bytes("raw/lot1/a.stdf") == data
    head = store.head("raw/lot1/a.stdf")
    assert head is not None and head.size == len(data) and head.etag == md5(data)
    assert head.last_modified is not None
    assert store.exists("raw/lot1/a.stdf")
    with store.open_read("raw/lot1/a.stdf") as fh:
        assert fh.read(5) == b"hello"
        assert fh.read() == data[5:]


def test_missing_objects(store: ObjectStore) -> None:
    assert store.head("nope/x") is None
    assert not store.exists("nope/x")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("nope/x")
    with pytest.raises(ObjectNotFound):
        store.open_read("nope/x")
    store.delete("nope/x")  # not an error
    assert store.delete_prefix("nope/") == 0


def test_overwrite_replaces(store: ObjectStore) -> None:
    store.put_bytes("k", b"one")
    store.put_bytes("k", b"two!")
    assert store.get_bytes("k") == b"two!"
    assert store.head("k").size == 4  # type: ignore[union-attr]


def test_list_sorted_recursive_with_prefix(store: ObjectStore) -> None:
    names = ["b/2", "a/b/c/d", "a/b1", "a/a", "c", "a/b/x", "a/\u00e9", "a/z"]
    for k in names:
        store.put_bytes(k, k.encode())
    assert keys(store) == sorted(names)
    assert keys(store, "a/") == ["a/a", "a/b/c/d", "a/b/x", "a/b1", "a/z", "a/\u00e9"]
    assert keys(store, "a/b") == ["a/b/c/d", "a/b/x", "a/b1"]  # a plain string prefix, as on S3
    assert keys(store, "a/b/") == ["a/b/c/d", "a/b/x"]
    assert keys(store, "zzz/") == []
    infos = {i.key: i for i in store.list("a/")}
    assert infos["a/z"].size == 3 and infos["a/z"].etag == md5(b"a/z")


def test_list_skips_directory_markers(store: ObjectStore) -> None:
    store.put_bytes("d/", b"")
    store.put_bytes("d/sub/", b"")
    store.put_bytes("d/x.parquet", b"x")
    if isinstance(store, S3ObjectStore):  # markers as pyarrow's write_dataset creates them
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + "d/y=1/", Body=b"")
    assert keys(store, "d/") == ["d/x.parquet"]
    assert keys(store) == ["d/x.parquet"]


def test_delete_and_delete_prefix(store: ObjectStore) -> None:
    for k in ["t/1", "t/2", "t/sub/3", "tx/4", "u/5"]:
        store.put_bytes(k, b"x")
    store.delete("t/1")
    assert keys(store, "t/") == ["t/2", "t/sub/3"]
    assert store.delete_prefix("t/") == 2
    assert keys(store) == ["tx/4", "u/5"]
    store.put_bytes("t/again", b"y")  # the prefix is usable again after pruning
    assert store.get_bytes("t/again") == b"y"


def test_move_never_replaces(store: ObjectStore) -> None:
    data = b"raw stdf bytes" * 50
    store.put_bytes("incoming/ws/sub/a.stdf", data)
    info = store.move("incoming/ws/sub/a.stdf", "processed/ws/sub/a.stdf")
    assert (info.key, info.size, info.etag) == ("processed/ws/sub/a.stdf", len(data), md5(data))
    assert keys(store) == ["processed/ws/sub/a.stdf"]
    assert store.get_bytes("processed/ws/sub/a.stdf") == data
    assert store.head("incoming/ws/sub/a.stdf") is None
    # a second delivery of the same move: the source is gone
    with pytest.raises(ObjectNotFound):
        store.move("incoming/ws/sub/a.stdf", "processed/ws/sub/a.stdf")
    # the same path dropped again: the destination is taken, nothing is overwritten or lost
    store.put_bytes("incoming/ws/sub/a.stdf", b"second file")
    with pytest.raises(ObjectExists):
        store.move("incoming/ws/sub/a.stdf", "processed/ws/sub/a.stdf")
    assert store.get_bytes("processed/ws/sub/a.stdf") == data
    assert store.get_bytes("incoming/ws/sub/a.stdf") == b"second file"
    store.move("incoming/ws/sub/a.stdf", "processed/ws/sub/a.job_2.stdf")
    assert keys(store) == ["processed/ws/sub/a.job_2.stdf", "processed/ws/sub/a.stdf"]
    assert keys(store, "incoming/") == []
    with pytest.raises(InvalidKey):
        store.move("processed/ws/sub/a.stdf", "../escape.stdf")


@pytest.mark.aws
def test_s3_head_treats_a_forbidden_missing_key_as_absent(s3_store: S3ObjectStore, monkeypatch) -> None:
    """Without a bucket-wide ListBucket, S3 answers HeadObject on a missing key with 403: ``head`` lists it."""
    from botocore.exceptions import ClientError

    s3_store.put_bytes("incoming/x.stdf", b"x")
    real = s3_store.client.head_object

    def forbidden(**kw):
        if kw["Key"].endswith("missing.stdf") or kw["Key"].endswith("denied.stdf"):
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
        return real(**kw)

    monkeypatch.setattr(s3_store.client, "head_object", forbidden)
    assert s3_store.head("incoming/missing.stdf") is None
    assert s3_store.head("incoming/x.stdf") is not None
    s3_store.put_bytes("incoming/denied.stdf", b"y")  # it exists: the 403 was a real denial
    with pytest.raises(ClientError):
        s3_store.head("incoming/denied.stdf")


@pytest.mark.parametrize("bad", ["", "/abs/key", "../up", "a/../b", "a/./b", "a//b", "..", "a\\b", "nul\x00"])
def test_key_validation(store: ObjectStore, bad: str) -> None:
    for call in (
        lambda: store.put_bytes(bad, b"x"),
        lambda: store.get_bytes(bad),
        lambda: store.open_read(bad),
        lambda: store.open_write(bad),
        lambda: store.head(bad),
        lambda: store.delete(bad),
        lambda: store.uri(bad),
    ):
        with pytest.raises(InvalidKey):
            call()


@pytest.mark.parametrize("bad", ["/abs/", "../", "a/../"])
def test_prefix_validation(store: ObjectStore, bad: str) -> None:
    with pytest.raises(InvalidKey):
        list(store.list(bad))
    with pytest.raises(InvalidKey):
        store.root_uri(bad)


def test_local_symlinks_cannot_escape(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    store = LocalObjectStore(tmp_path / "root")
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    (store.root / "filelink").symlink_to(outside / "secret")
    store.put_bytes("ok", b"1")
    for call in (
        lambda: store.get_bytes("link/secret"),
        lambda: store.put_bytes("link/new", b"x"),
        lambda: store.head("filelink"),
        lambda: store.uri("link/secret"),
    ):
        with pytest.raises(InvalidKey):
            call()
    assert keys(store) == ["ok"]
    assert not (outside / "new").exists()


def test_uris(store: ObjectStore) -> None:
    store.put_bytes("t/a.parquet", b"x")
    if isinstance(store, LocalObjectStore):
        assert store.uri("t/a.parquet") == str(store.root / "t" / "a.parquet")
        assert os.path.isabs(store.uri("t/a.parquet"))
        assert store.root_uri() == str(store.root) + "/"
        assert store.root_uri("t") == store.root_uri("t/") == str(store.root / "t") + "/"
    else:
        assert isinstance(store, S3ObjectStore)
        assert store.uri("t/a.parquet") == f"s3://{store.bucket}/lake/t/a.parquet"
        assert store.root_uri() == f"s3://{store.bucket}/lake/"
        assert store.root_uri("t") == store.root_uri("t/") == f"s3://{store.bucket}/lake/t/"


# --- atomic streaming writes ----------------------------------------------------------------------
def no_temp_files(store: ObjectStore) -> bool:
    if isinstance(store, LocalObjectStore):
        return not [p for p in store.root.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert isinstance(store, S3ObjectStore)
    return not store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads")


def test_open_write_visible_only_after_close(store: ObjectStore) -> None:
    w = store.open_write("w/a.bin")
    w.write(b"part one,")
    w.write(bytearray(b"part two"))
    assert w.tell() == 17
    assert not visible(store, "w/a.bin")
    assert keys(store) == []  # temp files never show
    w.close()
    assert store.get_bytes("w/a.bin") == b"part one,part two"
    assert no_temp_files(store)


def test_open_write_abort(store: ObjectStore) -> None:
    w = store.open_write("w/b.bin")
    w.write(b"doomed")
    w.abort()  # type: ignore[attr-defined]
    w.close()  # closing after abort publishes nothing
    assert not visible(store, "w/b.bin")
    assert no_temp_files(store)


def test_exception_inside_with_publishes_nothing(store: ObjectStore) -> None:
    store.put_bytes("w/c.bin", b"old")
    with pytest.raises(RuntimeError, match="boom"), store.open_write("w/c.bin") as w:
        w.write(b"new but incomplete")
        raise RuntimeError("boom")
    assert store.get_bytes("w/c.bin") == b"old"  # the previous object is untouched
    with store.open_write("w/d.bin") as w:
        w.write(b"ok")
    assert store.get_bytes("w/d.bin") == b"ok"
    assert no_temp_files(store)


def test_unclosed_writer_is_discarded(store: ObjectStore) -> None:
    w = store.open_write("w/e.bin")
    w.write(b"forgotten")
    del w
    gc.collect()
    assert not visible(store, "w/e.bin")
    assert no_temp_files(store)


def test_pyarrow_writes_parquet_through_open_write(store: ObjectStore) -> None:
    table = pa.table({"x": list(range(1000))})
    with store.open_write("t/p.parquet") as w:
        pq.write_table(table, w)
    assert pq.read_table(io.BytesIO(store.get_bytes("t/p.parquet"))).equals(table)


def test_large_multipart_write(store: ObjectStore) -> None:
    chunk = os.urandom(MiB)
    digest = hashlib.md5()
    with store.open_write("big/20m.bin") as w:
        for i in range(20):
            w.write(chunk[i:] + chunk[:i])
            digest.update(chunk[i:] + chunk[:i])
            if i == 12:  # at least one 8 MiB part is already uploaded on S3
                assert not visible(store, "big/20m.bin")
    head = store.head("big/20m.bin")
    assert head is not None and head.size == 20 * MiB
    assert hashlib.md5(store.get_bytes("big/20m.bin")).hexdigest() == digest.hexdigest()
    if isinstance(store, S3ObjectStore):
        assert head.etag is not None and head.etag.endswith("-3")  # 8 + 8 + 4 MiB parts
    assert no_temp_files(store)


def test_large_multipart_abort(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="stop"), store.open_write("big/aborted.bin") as w:
        for _ in range(10):
            w.write(b"\0" * MiB)
        raise ValueError("stop")
    assert not visible(store, "big/aborted.bin")
    assert no_temp_files(store)


def test_put_file(store: ObjectStore, tmp_path) -> None:
    src = tmp_path / "upload.bin"
    data = os.urandom(MiB) * 20
    src.write_bytes(data)
    info = store.put_file("raw/upload.bin", str(src))
    assert info.size == len(data)
    if isinstance(store, S3ObjectStore):
        assert info.etag is not None and info.etag.endswith("-3")  # upload_file went multipart
    assert hashlib.md5(store.get_bytes("raw/upload.bin")).hexdigest() == md5(data)
    small = tmp_path / "small.bin"
    small.write_bytes(b"tiny")
    assert store.put_file("raw/small.bin", str(small)).etag == md5(b"tiny")


def test_put_file_with_a_lifecycle_class(store: ObjectStore, tmp_path) -> None:
    """Every adapter accepts the lifecycle classes and writes the same bytes; S3 tags the object in the request
    that writes it, multipart (20 MiB) as well as a single PUT (the lake bucket's expiry rule matches the tag)."""
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(os.urandom(MiB) * 20)
    small.write_bytes(b"tiny")
    for key, src in (("exports/big.bin", big), ("exports/small.bin", small)):
        info = store.put_file(key, str(src), lifecycle=EXPORT_LIFECYCLE)
        assert store.get_bytes(key) == src.read_bytes() and info.size == src.stat().st_size
        if isinstance(store, S3ObjectStore):
            tags = store.client.get_object_tagging(Bucket=store.bucket, Key=store.prefix + key)["TagSet"]
            assert tags == [{"Key": LIFECYCLE_TAG, "Value": EXPORT_LIFECYCLE}], key
    assert store.put_file("raw/plain.bin", str(small)).size == 4
    if isinstance(store, S3ObjectStore):
        assert store.client.get_object_tagging(Bucket=store.bucket, Key=store.prefix + "raw/plain.bin")["TagSet"] == []
    with pytest.raises(ValueError, match="unknown lifecycle class 'forever'"):
        store.put_file("raw/x.bin", str(small), lifecycle="forever")
    assert not visible(store, "raw/x.bin")


def test_local_etag_of_foreign_files_is_md5(tmp_path) -> None:
    store = LocalObjectStore(tmp_path / "s")
    (store.root / "ext").mkdir()
    (store.root / "ext" / "f.bin").write_bytes(b"written by pyarrow")
    assert store.head("ext/f.bin").etag == md5(b"written by pyarrow")  # type: ignore[union-attr]
    (store.root / "ext" / "f.bin").write_bytes(b"rewritten, longer content")
    assert [i.etag for i in store.list("ext/")] == [md5(b"rewritten, longer content")]


# --- presigned uploads ----------------------------------------------------------------------------
def test_presign_put(store: ObjectStore) -> None:
    url = store.presign_put("up/file.stdf", expires_seconds=300, content_type="application/octet-stream")
    if isinstance(store, LocalObjectStore):
        assert url is None
        return
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert "X-Amz-Security-Token" in url  # the session token is signed into the URL
    req = urllib.request.Request(
        url, data=b"uploaded via presigned url", method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert store.get_bytes("up/file.stdf") == b"uploaded via presigned url"


# --- DuckDB ---------------------------------------------------------------------------------------
def test_duckdb_reads_parquet_written_through_the_store(store: ObjectStore) -> None:
    store.put_bytes("tables/lot=1/a.parquet", parquet_bytes(10))
    with store.open_write("tables/lot=2/b.parquet") as w:
        w.write(parquet_bytes(5, offset=100))
    con = duck()
    store.configure_duckdb(con)
    one = con.execute("SELECT count(*), sum(x) FROM read_parquet(?)", [store.uri("tables/lot=1/a.parquet")])
    assert one.fetchone() == (10, 45)
    glob = store.root_uri("tables/") + "*/*.parquet"
    rows = con.execute(
        "SELECT lot, count(*) FROM read_parquet(?, hive_partitioning=true) GROUP BY lot ORDER BY lot", [glob]
    ).fetchall()
    assert rows == [(1, 10), (2, 5)]


@pytest.mark.aws
def test_duckdb_secret_and_arrow_filesystem_carry_the_session_token(s3_store: S3ObjectStore) -> None:
    s3_store.put_bytes("t/a.parquet", parquet_bytes(3))
    con = duckdb.connect(config={**DUCKDB_CONFIG, "allow_unredacted_secrets": True})
    s3_store.configure_duckdb(con)
    (secret,) = con.execute("SELECT secret_string FROM duckdb_secrets(redact := false)").fetchone()
    assert f"session_token={SESSION_TOKEN}" in secret and "key_id=test" in secret
    assert f"scope={s3_store.root_uri()}" in secret and "url_style=path" in secret
    fs = s3_store.arrow_filesystem()
    assert pq.read_table(s3_store.arrow_path("t/a.parquet"), filesystem=fs).num_rows == 3


def test_s3_module_does_not_import_pyarrow_or_duckdb() -> None:
    code = "import sys, stratum.storage.s3; sys.exit(bool({'pyarrow', 'duckdb'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _locked_connection(store: ObjectStore, allowed_prefix: str) -> duckdb.DuckDBPyConnection:
    con = duck()
    store.configure_duckdb(con)
    con.execute("SET allowed_directories = ?", [[store.root_uri(allowed_prefix)]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def test_duckdb_allowed_directories_confine_reads(store: ObjectStore) -> None:
    for k in ["ws/a/t.parquet", "ws/a2/t.parquet", "ws/b/t.parquet"]:
        store.put_bytes(k, parquet_bytes(4))
    con = _locked_connection(store, "ws/a/")
    q = "SELECT count(*) FROM read_parquet(?)"
    assert con.execute(q, [store.uri("ws/a/t.parquet")]).fetchone() == (4,)
    assert con.execute(q, [store.root_uri("ws/a/") + "*.parquet"]).fetchone() == (4,)
    for refused in [store.uri("ws/b/t.parquet"), store.uri("ws/a2/t.parquet"), store.root_uri("ws/") + "**/*.parquet"]:
        with pytest.raises(duckdb.PermissionException):
            con.execute(q, [refused]).fetchall()
    with pytest.raises(duckdb.InvalidInputException, match="locked"):
        con.execute("SET enable_external_access = true")


@pytest.mark.parametrize(
    "kind",
    [
        "local",
        pytest.param(
            "s3",
            marks=[
                pytest.mark.aws,
                pytest.mark.xfail(
                    strict=True,
                    reason="DuckDB 1.5.5 httpfs: allowed_directories compares the raw s3:// string, then the HTTP "
                    "layer normalises '..' and requests the sibling object. Callers must reject '..' in SQL.",
                ),
            ],
        ),
    ],
)
def test_duckdb_allowed_directories_dotdot_traversal(kind: str, request: pytest.FixtureRequest, tmp_path) -> None:
    store = LocalObjectStore(tmp_path / "s") if kind == "local" else request.getfixturevalue("s3_store")
    store.put_bytes("ws/a/t.parquet", parquet_bytes(4))
    store.put_bytes("ws/b/t.parquet", parquet_bytes(4))
    con = _locked_connection(store, "ws/a/")
    with pytest.raises(duckdb.Error):
        con.execute("SELECT count(*) FROM read_parquet(?)", [store.root_uri("ws/a/") + "../b/t.parquet"]).fetchall()


# --- factory --------------------------------------------------------------------------------------
def test_factory_builds_the_configured_object_stores(tmp_path) -> None:
    from stratum.settings import Settings
    from stratum.storage.factory import build_object_store

    local = Settings(backend="local", data_dir=tmp_path)
    lake, drop = build_object_store(local, area="lake"), build_object_store(local, area="drop")
    assert isinstance(lake, LocalObjectStore) and lake.root == (tmp_path / "lake").resolve()
    assert isinstance(drop, LocalObjectStore) and drop.root == tmp_path.resolve()  # keys start with incoming/
    aws = Settings.model_validate(
        {
            "backend": "aws",
            "data_dir": tmp_path,
            "aws": {
                "region": "eu-west-1",
                "lake_bucket": "lake-b",
                "lake_prefix": "v1/",
                "drop_bucket": "drop-b",
                "endpoint_url": "http://127.0.0.1:9",
            },
        }
    )
    lake, drop = build_object_store(aws, area="lake"), build_object_store(aws, area="drop")
    assert isinstance(lake, S3ObjectStore) and lake.root_uri() == "s3://lake-b/v1/" and lake.region == "eu-west-1"
    assert isinstance(drop, S3ObjectStore) and drop.root_uri() == "s3://drop-b/"
    assert lake.endpoint_url == "http://127.0.0.1:9"
    no_endpoint = aws.model_copy(update={"aws": aws.aws.model_copy(update={"endpoint_url": ""})})
    assert build_object_store(no_endpoint, area="lake").endpoint_url is None  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        build_object_store(aws, area="archive")  # type: ignore[arg-type]


@pytest.mark.aws
def test_moto_reset_wipes_state(moto_server: str, s3_bucket: str, boto_session, request) -> None:
    client = boto_session.client("s3", endpoint_url=moto_server)
    assert s3_bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    request.getfixturevalue("moto_reset")
    assert client.list_buckets()["Buckets"] == []


def test_presign_put_binds_the_declared_length(store: ObjectStore) -> None:
    url = store.presign_put(
        "up/sized.stdf", expires_seconds=300, content_type="application/octet-stream", content_length=5
    )
    if isinstance(store, LocalObjectStore):
        assert url is None  # the local upload route enforces the declared size itself
        return
    assert url is not None
    signed = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert signed == ["content-length", "content-type", "host"]
