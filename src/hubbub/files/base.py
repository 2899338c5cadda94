"""The file-backend interface: where uploaded files live (a local or shared directory, or S3).

A backend stores bytes under a relative, slash-separated path that the files service chooses
(Mattermost's layout). Every backend refuses the same paths (`check_path`) and fails the same way:
`FileNotFoundInStore` when nothing is stored at a path, `FileStoreError` when the store itself
fails. Both are `OSError`s, so a caller that maps `FileNotFoundError` to 404 and `OSError` to 500
works with every backend.
"""

from __future__ import annotations

import abc
import errno
import uuid

from hubbub.lifecycle import Component


class FileNotFoundInStore(FileNotFoundError):
    """Nothing is stored at this path."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ENOENT, "no such file in the file store", path)


class FileStoreError(OSError):
    """The store could not be reached or refused an operation (the message says which store)."""


def check_path(path: str) -> str:
    """Returns `path` if it is a relative path that stays inside the store, else raises
    `ValueError`: no empty, `.` or `..` segment, no leading slash, no NUL."""
    segments = path.split("/")
    if not path or "\x00" in path or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"path escapes the file store or is not a plain relative path: {path!r}")
    return path


class FileBackend(Component, abc.ABC):
    @abc.abstractmethod
    async def write(self, path: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def read(self, path: str) -> bytes:
        """The bytes at `path`; raises `FileNotFoundInStore` if there are none."""

    @abc.abstractmethod
    async def exists(self, path: str) -> bool: ...

    @abc.abstractmethod
    async def remove(self, path: str) -> None:
        """Removes the file at `path`; removing a missing file is not an error."""

    async def check(self) -> None:
        """Raises when the store cannot be written and read back (used by the health check)."""
        # A probe name of its own: nodes sharing a store check it at the same time, and one
        # node's cleanup must not remove another's probe between its write and its read.
        probe = f"health/check-{uuid.uuid4().hex}.txt"
        await self.write(probe, b"ok")
        content = await self.read(probe)
        await self.remove(probe)
        if content != b"ok":
            raise FileStoreError("file store returned different content than written")

    async def close(self) -> None:
        """Releases the backend's connections (a backend without any has nothing to do)."""
        return None

    async def stop(self) -> None:
        await self.close()
