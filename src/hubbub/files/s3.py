"""Files in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...): the store a cluster shares.

Each operation is one boto3 call made in a worker thread: boto3 is synchronous, and its client is
thread-safe and keeps a pool of HTTP connections, so one client serves the whole node. An object's
key is `AmazonS3PathPrefix` + `/` + the path the files service chose (Mattermost's layout), so a
bucket Mattermost wrote can be served by hubbub and the other way round. Failures leave as the
backend-neutral errors of `hubbub.files.base`, naming the bucket and the endpoint.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hubbub.config.settings import FileConfig
from hubbub.files.base import FileBackend, FileNotFoundInStore, FileStoreError, check_path

T = TypeVar("T")

DEFAULT_REGION = "us-east-1"
AWS_GLOBAL_ENDPOINT = "s3.amazonaws.com"
# The health check must answer before a load balancer gives up on the node (AWS: 5 s by default).
CHECK_TIMEOUT_SECONDS = 4.0
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def endpoint_url(endpoint: str, ssl: bool) -> str | None:
    """The URL boto3 is given for `FileSettings.AmazonS3Endpoint` and `AmazonS3SSL`.

    The endpoint is `host[:port]` as in Mattermost, or a URL whose scheme agrees with
    `AmazonS3SSL`. Mattermost's default, AWS' global endpoint over TLS, gives `None`: boto3 then
    picks the endpoint of `AmazonS3Region` itself, which avoids redirects for buckets outside
    us-east-1.
    """
    scheme = "https" if ssl else "http"
    value = endpoint.strip()
    if "://" in value:
        given, value = value.split("://", 1)
        given = given.lower()
        if given not in ("http", "https"):
            raise ValueError(
                f"FileSettings.AmazonS3Endpoint {endpoint!r}: the scheme must be http or https"
            )
        if given != scheme:
            raise ValueError(
                f"FileSettings.AmazonS3Endpoint {endpoint!r} says {given} but "
                f"FileSettings.AmazonS3SSL is {str(ssl).lower()}: set AmazonS3SSL to "
                f"{str(given == 'https').lower()} or drop the scheme from the endpoint"
            )
    value = value.rstrip("/")
    try:
        parts = urllib.parse.urlsplit(f"{scheme}://{value}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or not parts.hostname or parts.path or parts.query or parts.username:
        raise ValueError(
            f"FileSettings.AmazonS3Endpoint {endpoint!r} must be host[:port], "
            "optionally with an http:// or https:// scheme"
        )
    if ssl and value.lower() == AWS_GLOBAL_ENDPOINT:
        return None
    return f"{scheme}://{value}"


def normalized_prefix(prefix: str) -> str:
    """`AmazonS3PathPrefix` without surrounding slashes; refused if it would escape the bucket."""
    value = prefix.strip("/")
    if value:
        try:
            check_path(value)
        except ValueError:
            raise ValueError(
                f"FileSettings.AmazonS3PathPrefix {prefix!r} must be a plain relative path"
            ) from None
    return value


class S3FileBackend(FileBackend):
    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str = AWS_GLOBAL_ENDPOINT,
        ssl: bool = True,
        region: str = "",
        prefix: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
    ) -> None:
        if not bucket:
            raise ValueError(
                "FileSettings.AmazonS3Bucket must be set when FileSettings.DriverName is amazons3"
            )
        if bool(access_key_id) != bool(secret_access_key):
            raise ValueError(
                "FileSettings.AmazonS3AccessKeyId and FileSettings.AmazonS3SecretAccessKey must "
                "be set together (or both left empty to use the default AWS credential chain)"
            )
        self.bucket = bucket
        self.prefix = normalized_prefix(prefix)
        self.endpoint_url = endpoint_url(endpoint, ssl)
        self.region = region or DEFAULT_REGION
        self.location = f"bucket {bucket!r} at {self.endpoint_url or 'AWS S3'}"
        host = urllib.parse.urlsplit(self.endpoint_url or "").hostname or ""
        on_aws = self.endpoint_url is None or host.endswith(".amazonaws.com")
        config = Config(
            # Buckets as subdomains only where DNS has them: MinIO, Ceph and test servers are
            # addressed by host name or IP and serve every bucket under a path.
            s3={"addressing_style": "auto" if on_aws else "path"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=3,
            read_timeout=60,
            max_pool_connections=32,
            # Checksums only where S3 requires them: many S3-compatible servers reject the
            # trailing checksums newer boto3 sends by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A session of its own: boto3's default session is shared process-wide and not
        # thread-safe. Empty credentials fall back to the default chain (environment, shared
        # files, instance or task role).
        session = boto3.session.Session()
        self._client: Any = session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=config,
        )

    @classmethod
    def from_settings(cls, settings: FileConfig) -> S3FileBackend:
        return cls(
            settings.AmazonS3Bucket,
            endpoint=settings.AmazonS3Endpoint,
            ssl=settings.AmazonS3SSL,
            region=settings.AmazonS3Region,
            prefix=settings.AmazonS3PathPrefix,
            access_key_id=settings.AmazonS3AccessKeyId,
            secret_access_key=settings.AmazonS3SecretAccessKey,
        )

    def key(self, path: str) -> str:
        """The object key of a store path."""
        check_path(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    async def _call(self, action: str, path: str, call: Callable[[str], T]) -> T:
        key = self.key(path)

        def run() -> T:
            try:
                return call(key)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                if code in _MISSING_KEY_CODES:
                    raise FileNotFoundInStore(path) from None
                if code == "NoSuchBucket":
                    raise FileStoreError(f"S3 {self.location} does not exist") from exc
                message = error.get("Message") or exc
                raise FileStoreError(
                    f"S3 {action} of {key!r} in {self.location} failed: {code}: {message}"
                ) from exc
            except BotoCoreError as exc:
                raise FileStoreError(
                    f"S3 {action} of {key!r} in {self.location} failed: {exc}"
                ) from exc

        return await asyncio.to_thread(run)

    async def write(self, path: str, data: bytes) -> None:
        await self._call(
            "write",
            path,
            lambda key: self._client.put_object(Bucket=self.bucket, Key=key, Body=data),
        )

    async def read(self, path: str) -> bytes:
        def get(key: str) -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

        return await self._call("read", path, get)

    async def exists(self, path: str) -> bool:
        def head(key: str) -> bool:
            try:
                self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_KEY_CODES:
                    return False
                raise
            return True

        return await self._call("exists", path, head)

    async def remove(self, path: str) -> None:
        # S3 deletes are idempotent: a missing key answers 204 like a present one.
        await self._call(
            "remove",
            path,
            lambda key: self._client.delete_object(Bucket=self.bucket, Key=key),
        )

    async def check(self) -> None:
        """Writes, reads back and removes a probe object, within `CHECK_TIMEOUT_SECONDS`."""
        try:
            await asyncio.wait_for(super().check(), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            raise FileStoreError(
                f"S3 {self.location} did not answer within {CHECK_TIMEOUT_SECONDS}s"
            ) from None

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
