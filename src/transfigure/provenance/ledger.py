"""The provenance ledger: an append-only sqlite table of every provenance id ever embedded.

One row per stamped output: the id (the watermark payload, 16 hex characters), model name,
registry version, variant, MLflow run id, creation time (UTC ISO 8601), SHA-256 of the output file
and of its decoded pixels, media type, size and the watermark key's fingerprint. A stripped or
re-encoded image is traced back through its watermark alone.

Append-only is enforced by the database (triggers abort any UPDATE or DELETE). The database runs
in WAL mode; every call opens its own connection (safe from any thread or process; a busy
database is waited for up to 30 s), so the BentoML workers can stamp concurrently.
``synchronous=NORMAL``: a committed row survives a crash of the process, though the last
commits before a power loss may be lost.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["DuplicateIdError", "Ledger", "LedgerRecord"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS provenance (
    id             TEXT PRIMARY KEY CHECK (length(id) = 16),
    model_name     TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    model_variant  TEXT,
    run_id         TEXT,
    created_at     TEXT NOT NULL,
    output_sha256  TEXT NOT NULL,
    pixel_sha256   TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    key_id         TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS provenance_no_update BEFORE UPDATE ON provenance
BEGIN SELECT RAISE(ABORT, 'the provenance ledger is append-only: rows cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS provenance_no_delete BEFORE DELETE ON provenance
BEGIN SELECT RAISE(ABORT, 'the provenance ledger is append-only: rows cannot be deleted'); END;
"""
_initialised: set[Path] = set()
_init_lock = threading.Lock()


class DuplicateIdError(ValueError):
    """The provenance id is already in the ledger (ids are never reused)."""


@dataclass(frozen=True)
class LedgerRecord:
    """One ledger row."""

    id: str
    model_name: str
    model_version: str
    model_variant: str | None
    run_id: str | None
    created_at: str
    output_sha256: str
    pixel_sha256: str
    media_type: str
    width: int
    height: int
    key_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Append-only provenance ledger in the sqlite file ``path`` (created with its folder on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self._ensure_schema()
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as conn:
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn

    def _ensure_schema(self) -> None:
        key = self.path.resolve()
        if key in _initialised and self.path.exists():
            return
        with _init_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
            _initialised.add(key)

    def contains(self, provenance_id: str) -> bool:
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM provenance WHERE id = ?", (provenance_id,)).fetchone() is not None

    def append(self, record: LedgerRecord) -> None:
        """Record one output. Raises :class:`DuplicateIdError` if the id exists (nothing is changed)."""
        fields = record.to_dict()
        sql = f"INSERT INTO provenance ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})"
        try:
            with self._connect() as conn:
                conn.execute(sql, tuple(fields.values()))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise DuplicateIdError(f"provenance id {record.id} is already in the ledger {self.path}") from exc
            raise

    def get(self, provenance_id: str) -> LedgerRecord | None:
        """The record of ``provenance_id`` (16 hex characters), or None. Never creates the file."""
        if not self.path.exists():
            return None
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM provenance WHERE id = ?", (provenance_id.lower(),)).fetchone()
        return LedgerRecord(**dict(row)) if row is not None else None

    def count(self) -> int:
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return int(conn.execute("SELECT count(*) FROM provenance").fetchone()[0])
