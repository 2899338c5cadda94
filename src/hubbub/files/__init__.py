"""File storage backends behind one interface (`FileBackend`)."""

from hubbub.config import Settings
from hubbub.files.base import FileBackend, FileNotFoundInStore, FileStoreError
from hubbub.files.local import LocalFileBackend


def make_backend(settings: Settings) -> FileBackend:
    """The backend `FileSettings.DriverName` names; raises `ValueError` for unusable settings."""
    files = settings.FileSettings
    if files.DriverName == "amazons3":
        # Imported here: boto3 takes a while to import and a local-driver node never needs it.
        from hubbub.files.s3 import S3FileBackend

        return S3FileBackend.from_settings(files)
    return LocalFileBackend(files.Directory)


__all__ = [
    "FileBackend",
    "FileNotFoundInStore",
    "FileStoreError",
    "LocalFileBackend",
    "make_backend",
]
