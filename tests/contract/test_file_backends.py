"""One contract for every FileBackend (a local directory and S3 on a real moto_server), then how
the S3 backend reads its settings and fails.

Backends are built the way a node builds them, by `make_backend` from MM_* settings. The S3 one
writes under a path prefix into a bucket of its own on one moto_server per module.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubbub.config import load_config
from hubbub.files import (
    FileBackend,
    FileNotFoundInStore,
    FileStoreError,
    LocalFileBackend,
    make_backend,
)
from hubbub.files.s3 import S3FileBackend, endpoint_url
from tests.support.s3 import MotoServer, moto_server_binary, start_moto

PREFIX = "tenant-a/files"
MIB = 1024 * 1024


def backend_from(env: dict[str, str]) -> FileBackend:
    return make_backend(load_config(None, environ=env).settings)


@dataclass
class Store:
    """A backend under test, what it holds as seen from outside, and a second backend ("another
    node") on the same storage."""

    backend: FileBackend
    paths: Callable[[], list[str]]
    twin: Callable[[], FileBackend]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


def local_store(tmp_path: Path) -> Store:
    root = tmp_path / "files"
    env = {"MM_FILESETTINGS_DIRECTORY": str(root)}

    def paths() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return Store(backend_from(env), paths, lambda: backend_from(env))


def s3_store(moto: MotoServer) -> Store:
    bucket = moto.create_bucket()
    # Slashes around the prefix are how operators often write it; keys must not get empty segments.
    env = moto.node_env(bucket, prefix=f"/{PREFIX}/")

    def paths() -> list[str]:
        keys = moto.keys(bucket)
        assert all(k.startswith(PREFIX + "/") for k in keys), keys
        return [k.removeprefix(PREFIX + "/") for k in keys]

    return Store(backend_from(env), paths, lambda: backend_from(env))


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "local":
        made = local_store(tmp_path)
        assert isinstance(made.backend, LocalFileBackend)
    else:
        made = s3_store(request.getfixturevalue("moto"))
        assert isinstance(made.backend, S3FileBackend)
    try:
        yield made
    finally:
        await made.backend.close()


# The contract


@pytest.mark.parametrize(
    "data",
    [b"", bytes(range(256)) * 3, random.Random(7).randbytes(5 * MIB)],
    ids=["empty", "all-byte-values", "5MiB"],
)
async def test_write_then_read_returns_the_same_bytes(store: Store, data: bytes) -> None:
    path = "20240102/teams/noteam/channels/c/users/u/f/blob.bin"
    await store.backend.write(path, data)
    assert await store.backend.read(path) == data
    assert await store.backend.exists(path)
    assert store.paths() == [path]


async def test_write_replaces_what_was_there(store: Store) -> None:
    await store.backend.write("a/b.txt", b"the first, longer content")
    await store.backend.write("a/b.txt", b"second")
    assert await store.backend.read("a/b.txt") == b"second"
    assert store.paths() == ["a/b.txt"]


async def test_exists_follows_write_and_remove(store: Store) -> None:
    assert not await store.backend.exists("x/y.txt")
    await store.backend.write("x/y.txt", b"y")
    assert await store.backend.exists("x/y.txt")
    # A directory-like prefix of a stored path is not a file.
    assert not await store.backend.exists("x")
    with pytest.raises(FileNotFoundInStore):
        await store.backend.read("x")
    await store.backend.remove("x")
    assert await store.backend.read("x/y.txt") == b"y"
    await store.backend.remove("x/y.txt")
    assert not await store.backend.exists("x/y.txt")
    assert store.paths() == []


async def test_remove_is_idempotent(store: Store) -> None:
    await store.backend.remove("never/written.txt")
    await store.backend.write("once.txt", b"1")
    await store.backend.remove("once.txt")
    await store.backend.remove("once.txt")
    assert store.paths() == []


async def test_reading_a_missing_path_raises_file_not_found_in_store(store: Store) -> None:
    with pytest.raises(FileNotFoundInStore) as missing:
        await store.backend.read("no/such/file.txt")
    assert missing.value.filename == "no/such/file.txt"
    # The files service turns FileNotFoundError into 404 and any other OSError into 500.
    assert isinstance(missing.value, FileNotFoundError)
    await store.backend.write("gone.txt", b"g")
    await store.backend.remove("gone.txt")
    with pytest.raises(FileNotFoundInStore):
        await store.backend.read("gone.txt")


@pytest.mark.parametrize(
    "path",
    ["", "../outside.txt", "a/../../outside.txt", "/etc/passwd", "a//b", "./a", "a/..", "a\x00b"],
)
async def test_paths_that_are_not_plain_relative_paths_are_refused(store: Store, path: str) -> None:
    with pytest.raises(ValueError):
        await store.backend.write(path, b"x")
    with pytest.raises(ValueError):
        await store.backend.read(path)
    with pytest.raises(ValueError):
        await store.backend.exists(path)
    with pytest.raises(ValueError):
        await store.backend.remove(path)
    assert store.paths() == []


async def test_names_with_spaces_unicode_and_url_characters(store: Store) -> None:
    # clean_name keeps all of these in uploaded file names, so the store must too.
    names = ["résumé 日本 #1?.txt", "a+b%20c&d=e;f.bin", "100% [final] (2).tar.gz", "..dots"]
    for i, name in enumerate(names):
        await store.backend.write(f"d/{name}", bytes([i]) * 10)
    for i, name in enumerate(names):
        assert await store.backend.read(f"d/{name}") == bytes([i]) * 10
    assert store.paths() == sorted(f"d/{name}" for name in names)


async def test_concurrent_writes_and_reads(store: Store) -> None:
    blobs = {f"c/{i:02d}.bin": random.Random(i).randbytes(1000 + i) for i in range(40)}
    await asyncio.gather(*(store.backend.write(p, d) for p, d in blobs.items()))
    read = await asyncio.gather(*(store.backend.read(p) for p in blobs))
    assert read == list(blobs.values())


async def test_two_backends_on_one_store_see_each_others_files(store: Store) -> None:
    other = store.twin()
    try:
        await store.backend.write("shared/one.txt", b"from node one")
        assert await other.read("shared/one.txt") == b"from node one"
        await other.remove("shared/one.txt")
        assert not await store.backend.exists("shared/one.txt")
    finally:
        await other.close()


async def test_check_passes_and_leaves_nothing_behind(store: Store) -> None:
    await store.backend.write("keep.txt", b"k")
    await store.backend.check()
    assert store.paths() == ["keep.txt"]


async def test_concurrent_checks_of_nodes_sharing_a_store_all_pass(store: Store) -> None:
    # Every node of a cluster answers its load balancer's health checks against the same store.
    other = store.twin()
    try:
        await asyncio.gather(*(b.check() for b in [store.backend, other] * 5))
    finally:
        await other.close()
    assert store.paths() == []


# A failing store makes check() raise


async def test_check_raises_when_the_local_directory_cannot_be_used(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_bytes(b"not a directory")
    backend = backend_from({"MM_FILESETTINGS_DIRECTORY": str(occupied)})
    with pytest.raises(OSError):
        await backend.check()


async def test_check_names_a_bucket_that_does_not_exist(moto: MotoServer) -> None:
    env = moto.node_env("hubbub-no-such-bucket", prefix=PREFIX)
    backend = backend_from(env)
    try:
        with pytest.raises(FileStoreError, match=r"'hubbub-no-such-bucket'.*does not exist"):
            await backend.check()
        with pytest.raises(FileStoreError, match="does not exist"):
            await backend.write("a.txt", b"a")
        # A missing bucket is a broken store, not a missing file (which would become a 404).
        with pytest.raises(FileStoreError):
            await backend.read("a.txt")
    finally:
        await backend.close()


async def test_a_stopped_server_fails_check_and_every_call_then_recovers(
    moto: MotoServer,
) -> None:
    bucket = moto.create_bucket()
    backend = backend_from(moto.node_env(bucket))
    try:
        await backend.write("before.txt", b"b")
        await backend.check()

        moto.kill()
        with pytest.raises(FileStoreError, match=f"127.0.0.1:{moto.port}"):
            await backend.check()
        # A store that cannot be reached is not a missing file (which would become a 404).
        with pytest.raises(FileStoreError):
            await backend.read("before.txt")
        with pytest.raises(FileStoreError):
            await backend.exists("before.txt")
        with pytest.raises(FileStoreError):
            await backend.remove("before.txt")

        # A new (empty) server on the same port: the pooled connections to the old one are
        # dead, and the backend must get over that by itself.
        moto.start_again()
        await backend.check()
        await backend.write("after.txt", b"a")
        assert await backend.read("after.txt") == b"a"
        assert moto.keys(bucket) == ["after.txt"]
    finally:
        await backend.close()
        moto.ensure_running()  # for the module's next tests, whatever happened here


# S3 settings


@pytest.mark.parametrize(
    ("endpoint", "ssl", "url"),
    [
        ("127.0.0.1:9000", False, "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000", False, "http://127.0.0.1:9000"),
        ("HTTPS://minio.internal:9000/", True, "https://minio.internal:9000"),
        ("minio.internal", True, "https://minio.internal"),
        ("[::1]:9000", False, "http://[::1]:9000"),
        ("s3.eu-west-1.amazonaws.com", True, "https://s3.eu-west-1.amazonaws.com"),
        # Mattermost's default: boto3 picks the endpoint of the configured region.
        ("s3.amazonaws.com", True, None),
        ("https://s3.amazonaws.com", True, None),
    ],
)
def test_endpoint_with_or_without_scheme(endpoint: str, ssl: bool, url: str | None) -> None:
    assert endpoint_url(endpoint, ssl) == url


@pytest.mark.parametrize(
    ("endpoint", "ssl", "message"),
    [
        ("http://minio:9000", True, "AmazonS3SSL is true"),
        ("https://minio:9000", False, "AmazonS3SSL is false"),
        ("ftp://minio", False, "scheme must be http or https"),
        ("minio:9000/bucket", False, "host\\[:port\\]"),
        ("minio:port", False, "host\\[:port\\]"),
        ("", True, "host\\[:port\\]"),
        ("user:pw@minio", True, "host\\[:port\\]"),
    ],
)
def test_unusable_endpoints_are_refused_naming_the_setting(
    endpoint: str, ssl: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=f"FileSettings.AmazonS3Endpoint.*{message}"):
        endpoint_url(endpoint, ssl)


def test_amazons3_needs_a_bucket_and_both_keys_or_neither() -> None:
    base = {"MM_FILESETTINGS_DRIVERNAME": "amazons3", "MM_FILESETTINGS_AMAZONS3SSL": "false"}
    with pytest.raises(ValueError, match=r"FileSettings\.AmazonS3Bucket must be set"):
        backend_from(base)
    with pytest.raises(ValueError, match="AmazonS3SecretAccessKey must be set together"):
        backend_from(
            {
                **base,
                "MM_FILESETTINGS_AMAZONS3BUCKET": "b",
                "MM_FILESETTINGS_AMAZONS3ACCESSKEYID": "only-the-id",
            }
        )
    with pytest.raises(ValueError, match="AmazonS3PathPrefix"):
        backend_from(
            {
                **base,
                "MM_FILESETTINGS_AMAZONS3BUCKET": "b",
                "MM_FILESETTINGS_AMAZONS3PATHPREFIX": "a/../..",
            }
        )


async def test_region_defaults_to_us_east_1_and_keys_carry_the_prefix() -> None:
    backend = backend_from(
        {
            "MM_FILESETTINGS_DRIVERNAME": "amazons3",
            "MM_FILESETTINGS_AMAZONS3BUCKET": "b",
            "MM_FILESETTINGS_AMAZONS3PATHPREFIX": "/one/two/",
        }
    )
    try:
        assert isinstance(backend, S3FileBackend)
        assert backend.region == "us-east-1"
        assert backend.endpoint_url is None
        assert backend.key("2024/x.txt") == "one/two/2024/x.txt"
    finally:
        await backend.close()


async def test_without_keys_in_settings_the_default_credential_chain_is_used(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support.s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    # Nothing else of the chain may answer (and no instance metadata service is asked).
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = moto.create_bucket()
    env = moto.node_env(bucket)
    del env["MM_FILESETTINGS_AMAZONS3ACCESSKEYID"], env["MM_FILESETTINGS_AMAZONS3SECRETACCESSKEY"]
    backend = backend_from(env)
    try:
        await backend.write("chain.txt", b"c")
        assert moto.get(bucket, "chain.txt") == b"c"
    finally:
        await backend.close()


def test_a_missing_moto_server_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The S3 tests never skip: without moto_server they fail and say how to get it.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"moto_server not found.*\.\[dev\]"):
        moto_server_binary()
