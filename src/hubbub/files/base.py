"""The file-backend interface: where uploaded files live (a local directory now, S3 later)."""

from __future__ import annotations

import abc


class FileBackend(abc.ABC):
    @abc.abstractmethod
    async def write(self, path: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def read(self, path: str) -> bytes: ...

    @abc.abstractmethod
    async def exists(self, path: str) -> bool: ...

    @abc.abstractmethod
    async def remove(self, path: str) -> None: ...

    async def check(self) -> None:
        """Raises when the store cannot be written and read back (used by the health check)."""
        probe = "health/check.txt"
        await self.write(probe, b"ok")
        if await self.read(probe) != b"ok":
            raise OSError("file store returned different content than written")
        await self.remove(probe)
