"""Files in a local directory (or one shared by every node over NFS)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hubbub.files.base import FileBackend, FileNotFoundInStore, check_path


class LocalFileBackend(FileBackend):
    def __init__(self, directory: str) -> None:
        self.root = Path(directory).expanduser().resolve()

    def _path(self, path: str) -> Path:
        full = (self.root / check_path(path)).resolve()
        # Also catches a symlink inside the store that points out of it.
        if self.root not in full.parents:
            raise ValueError(f"path escapes the file store: {path!r}")
        return full

    async def write(self, path: str, data: bytes) -> None:
        target = self._path(path)

        def _write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)

        await asyncio.to_thread(_write)

    async def read(self, path: str) -> bytes:
        target = self._path(path)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            # A directory is only the prefix of stored paths, as in S3, not a file.
            raise FileNotFoundInStore(path) from None

    async def exists(self, path: str) -> bool:
        return await asyncio.to_thread(self._path(path).is_file)

    async def remove(self, path: str) -> None:
        target = self._path(path)

        def _remove() -> None:
            if not target.is_dir():
                target.unlink(missing_ok=True)

        await asyncio.to_thread(_remove)
