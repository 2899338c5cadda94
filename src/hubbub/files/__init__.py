"""File storage backends behind one interface (`FileBackend`)."""

from hubbub.config import Settings
from hubbub.files.base import FileBackend
from hubbub.files.local import LocalFileBackend


def make_backend(settings: Settings) -> FileBackend:
    if settings.FileSettings.DriverName == "local":
        return LocalFileBackend(settings.FileSettings.Directory)
    raise NotImplementedError("the amazons3 file driver arrives with the cluster work")


__all__ = ["FileBackend", "LocalFileBackend", "make_backend"]
