"""The file an import reads (`importer.py`): a `.jsonl` alone, or a zip with one `.jsonl` at its
top level and the attachments it names. Its own module so the two passes of an import
(`import_apply.py`, `import_posts.py`) can use it without importing the job that runs them."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from hubbub.jobs.bulk import archive_name


class ImportRefused(Exception):
    """The file cannot be imported; the message says why (and nothing was written)."""


@dataclass
class Archive:
    """The lines of the `.jsonl` and the attachments next to it."""

    lines: list[bytes]
    zip: zipfile.ZipFile | None = None
    members: frozenset[str] = frozenset()

    def read(self, path: str) -> bytes:
        if self.zip is None:
            raise ImportRefused(f"attachment {path!r}: the import file is not a zip archive")
        return self.zip.read(archive_name(path))


def open_archive(raw: bytes) -> Archive:
    if raw[:4] != b"PK\x03\x04":
        return Archive(raw.splitlines())
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise ImportRefused(f"the import file is not a readable zip archive ({exc})") from None
    names = [n for n in archive.namelist() if n.endswith(".jsonl") and "/" not in n]
    if len(names) != 1:
        raise ImportRefused(
            f"the archive must hold exactly one .jsonl file at its top level, found {len(names)}"
        )
    return Archive(archive.read(names[0]).splitlines(), archive, frozenset(archive.namelist()))
