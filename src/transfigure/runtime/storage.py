"""A folder on any fsspec file system (``s3://bucket/prefix``, ``file:///shared/runs``, ``gs://`` ...).

Training mirrors its checkpoints and the exported generator to such a folder so a run
stopped on one machine continues on another (``training.remote_dir``). This module knows
nothing of checkpoints: it uploads, downloads, lists, moves and removes files, and checks
early that the folder can be written to.

S3 credentials and endpoint come from the environment, as boto3 reads them:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (or a profile / instance role), and for an
S3-compatible server that is not AWS, ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``;
``FSSPEC_S3_ENDPOINT_URL`` also works, read by fsspec when it is imported).
``MLFLOW_S3_ENDPOINT_URL`` is MLflow's own variable: s3fs does not read it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

logger = logging.getLogger(__name__)

#: prefix of the temporary names uploads go to before they are moved to their final name
TMP_PREFIX = ".upload-"


class RemoteStorageError(RuntimeError):
    """The remote folder cannot be reached, read or written; the message names its URL."""


def _endpoint_hint(url: str) -> str:
    if not url.startswith(("s3://", "s3a://")):
        return ""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    endpoint = endpoint or os.environ.get("FSSPEC_S3_ENDPOINT_URL")
    where = f"endpoint {endpoint}" if endpoint else "AWS S3 (no AWS_ENDPOINT_URL set)"
    return (
        f" [{where}; for an S3-compatible server set AWS_ENDPOINT_URL, and AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY; MLFLOW_S3_ENDPOINT_URL is not read here]"
    )


class RemoteFolder:
    """The folder at ``url``; names are relative to it (``"checkpoints/last.pt"``)."""

    def __init__(self, url: str, *, _fs: fsspec.AbstractFileSystem | None = None) -> None:
        self.url = url.rstrip("/")
        if _fs is not None:
            self.fs, self.root = _fs, _fs._strip_protocol(self.url).rstrip("/")
            return
        try:
            # a file system of its own (not fsspec's cached instance): it reads the endpoint and credentials
            # in the environment now, not those of whichever folder was opened first in this process
            fs, root = fsspec.url_to_fs(self.url, skip_instance_cache=True)
        except (ImportError, ValueError) as exc:  # unknown protocol, missing s3fs/gcsfs ...
            raise RemoteStorageError(f"cannot use remote folder '{self.url}': {exc}") from exc
        if isinstance(fs, LocalFileSystem):
            fs = LocalFileSystem(auto_mkdir=True)  # object stores have no folders; a local one must make them
        self.fs, self.root = fs, root.rstrip("/")

    def __repr__(self) -> str:
        return f"RemoteFolder({self.url!r})"

    def path(self, name: str = "") -> str:
        return f"{self.root}/{name}".rstrip("/")

    def url_of(self, name: str = "") -> str:
        return f"{self.url}/{name}".rstrip("/")

    def child(self, name: str) -> RemoteFolder:
        """Sub-folder ``name``, on the same file system object."""
        return RemoteFolder(self.url_of(name), _fs=self.fs)

    def _error(self, action: str, exc: BaseException, name: str = "") -> RemoteStorageError:
        return RemoteStorageError(f"cannot {action} '{self.url_of(name)}': {exc}{_endpoint_hint(self.url)}")

    # -- checks and listing ---------------------------------------------------------------
    def check_writable(self) -> None:
        """Write and remove a small probe object now, so a wrong URL, bucket or credential fails at once."""
        probe = f"{TMP_PREFIX}probe-{uuid.uuid4().hex[:12]}"
        try:
            self.fs.pipe_file(self.path(probe), b"transfigure write check\n")
            self.fs.rm_file(self.path(probe))
        except Exception as exc:
            raise self._error("write to remote folder", exc) from exc

    def _entries(self, name: str, kind: str) -> dict[str, dict]:
        try:
            self.fs.invalidate_cache(self.path(name))
            entries = self.fs.ls(self.path(name), detail=True)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise self._error("list", exc, name) from exc
        return {e["name"].rstrip("/").rsplit("/", 1)[-1]: e for e in entries if e.get("type") == kind}

    def files(self, name: str = "") -> dict[str, dict]:
        """The files directly in sub-folder ``name`` (not in its sub-folders): {file name: fsspec info}."""
        return self._entries(name, "file")

    def folders(self, name: str = "") -> list[str]:
        """The names of the sub-folders directly in sub-folder ``name``."""
        return sorted(self._entries(name, "directory"))

    def exists(self, name: str) -> bool:
        try:
            self.fs.invalidate_cache(self.path(name))
            return bool(self.fs.exists(self.path(name)))
        except Exception as exc:
            raise self._error("look up", exc, name) from exc

    # -- transfers ------------------------------------------------------------------------
    def upload(self, local: Path, name: str) -> str:
        """Copy the local file to ``name`` under a temporary name first, then move it there.

        A reader never sees a half-written ``name``: on a local file system the move is a
        rename; on S3 an object appears whole, and the server-side copy of the temporary key
        replaces the old object in one step. Returns the file's URL.
        """
        parent, _, base = name.rpartition("/")
        tmp = f"{parent}/{TMP_PREFIX}{base}.{uuid.uuid4().hex[:12]}".lstrip("/")
        try:
            self.fs.put_file(str(local), self.path(tmp))
            self.fs.mv(self.path(tmp), self.path(name))
        except Exception as exc:
            try:
                self.fs.rm_file(self.path(tmp))
            except Exception:
                pass
            raise self._error("upload to", exc, name) from exc
        return self.url_of(name)

    def download(self, name: str, local: Path) -> Path:
        """Copy ``name`` to the local path via a temporary file in the same folder + rename."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".download", dir=local.parent)
        os.close(fd)
        try:
            self.fs.get_file(self.path(name), tmp)
            os.replace(tmp, local)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, Exception) and not isinstance(exc, FileNotFoundError):
                raise self._error("download", exc, name) from exc
            raise
        return local

    def upload_folder(self, local: Path, name: str) -> list[str]:
        """Make sub-folder ``name`` hold exactly the files of the local folder (byte for byte).

        Every file is uploaded (:meth:`upload`), then files under ``name`` that the local folder
        does not have are removed. Returns the relative names uploaded.
        """
        local = Path(local)
        names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        for rel in names:
            self.upload(local / rel, f"{name}/{rel}")
        try:
            self.fs.invalidate_cache(self.path(name))
            present = self.fs.find(self.path(name)) if self.fs.exists(self.path(name)) else []
        except Exception as exc:
            raise self._error("list", exc, name) from exc
        prefix = self.path(name) + "/"
        for full in present:
            rel = full[len(prefix) :] if full.startswith(prefix) else None
            if rel is not None and rel not in names:
                self.remove(f"{name}/{rel}")
        return names

    def remove(self, name: str) -> None:
        try:
            self.fs.rm_file(self.path(name))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._error("remove", exc, name) from exc

    def move(self, name: str, dest: str) -> None:
        """Move file ``name`` to ``dest`` (rename locally; copy + delete on object stores)."""
        try:
            self.fs.mv(self.path(name), self.path(dest))
        except Exception as exc:
            raise self._error(f"move to '{self.url_of(dest)}'", exc, name) from exc


def modified_time(info: dict) -> float | None:
    """A file's modification time (seconds since the epoch) from fsspec's ``info``, when it has one."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None
