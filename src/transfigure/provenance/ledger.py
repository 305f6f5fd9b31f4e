"""The provenance ledger: an append-only table of every provenance id ever embedded (sqlite or PostgreSQL).

One row per stamped output: the id (the watermark payload, 16 hex characters), model name,
registry version, variant, MLflow run id, creation time (UTC ISO 8601), SHA-256 of the output file
and of its decoded pixels, media type, size and the watermark key's fingerprint. A stripped or
re-encoded image is traced back through its watermark alone.

The ledger lives in a sqlite file (the default, one machine) or in a PostgreSQL database (a team:
every stamping process and every verifier on any machine shares it), named by ``TRANSFIGURE_LEDGER``:
a path or ``sqlite:///path`` for sqlite, ``postgresql://user:pw@host:port/db`` or
``postgresql+psycopg2://...`` for PostgreSQL. One :class:`Ledger` class reads and writes both.

Append-only is enforced by the database, not by this code: sqlite triggers abort any UPDATE or
DELETE; PostgreSQL triggers raise on UPDATE, DELETE and TRUNCATE (a role that owns the table can
still drop the triggers: give stamping processes a role with INSERT and SELECT only, see the
README's "Team setup"). The id is the primary key, so two writers can never record the same id:
the second gets :class:`DuplicateIdError` and the stamp draws a fresh id.

sqlite runs in WAL mode; every call opens its own connection (safe from any thread or process; a
busy database is waited for up to 30 s), so the BentoML workers can stamp concurrently.
``synchronous=NORMAL``: a committed row survives a crash of the process, though the last commits
before a power loss may be lost. PostgreSQL: one SQLAlchemy engine (connection pool) per URL and
process; each call is one transaction; a committed row is durable.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["DuplicateIdError", "Ledger", "LedgerRecord", "is_database_url"]

#: the one table both databases hold (SQL common to sqlite and PostgreSQL)
_TABLE: Final = """
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
)"""
_SCHEMA: Final = (
    _TABLE
    + """;
CREATE TRIGGER IF NOT EXISTS provenance_no_update BEFORE UPDATE ON provenance
BEGIN SELECT RAISE(ABORT, 'the provenance ledger is append-only: rows cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS provenance_no_delete BEFORE DELETE ON provenance
BEGIN SELECT RAISE(ABORT, 'the provenance ledger is append-only: rows cannot be deleted'); END;
"""
)
#: PostgreSQL: the same table, rows that can only be added (triggers raise on UPDATE, DELETE, TRUNCATE).
#: Run under an advisory lock, so processes creating the schema at the same moment do not collide.
_PG_SCHEMA: Final = (
    _TABLE,
    """
CREATE OR REPLACE FUNCTION provenance_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the provenance ledger is append-only: rows cannot be %', lower(TG_OP) || 'd'
        USING ERRCODE = 'integrity_constraint_violation';
END $$""",
    "DROP TRIGGER IF EXISTS provenance_no_update ON provenance",
    "CREATE TRIGGER provenance_no_update BEFORE UPDATE ON provenance FOR EACH ROW EXECUTE FUNCTION provenance_append_only()",
    "DROP TRIGGER IF EXISTS provenance_no_delete ON provenance",
    "CREATE TRIGGER provenance_no_delete BEFORE DELETE ON provenance FOR EACH ROW EXECUTE FUNCTION provenance_append_only()",
    "DROP TRIGGER IF EXISTS provenance_no_truncate ON provenance",
    "CREATE TRIGGER provenance_no_truncate BEFORE TRUNCATE ON provenance FOR EACH STATEMENT EXECUTE FUNCTION provenance_append_only()",
)
_PG_READY: Final = (
    "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('provenance') "
    "AND tgname IN ('provenance_no_update', 'provenance_no_delete', 'provenance_no_truncate')"
)
_PG_SCHEMA_LOCK: Final = 0x7472616E73666967  # pg_advisory_xact_lock key ("transfig")
_PG_DRIVERS: Final = ("postgresql", "postgresql+psycopg2", "postgres")
_initialised: set[Path] = set()
_engines: dict[str, Any] = {}
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


def is_database_url(value: str | Path) -> bool:
    """True for a database URL (``scheme://...``), False for a plain file path."""
    return isinstance(value, str) and "://" in value


def _sqlite_path(url: str) -> Path:
    """``sqlite:///relative/path`` or ``sqlite:////absolute/path`` -> the path (SQLAlchemy's convention)."""
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    if not rest or rest.startswith(":memory:"):
        raise ValueError(f"the provenance ledger needs a sqlite file, got {url!r}")
    return Path(rest)


def _redacted(url: str) -> str:
    """The URL with its password hidden (for messages and repr)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class Ledger:
    """Append-only provenance ledger: a sqlite file (path or ``sqlite:///path``) or a PostgreSQL URL.

    The sqlite file is created with its folder on first write; a PostgreSQL database must exist (its
    table and triggers are created on first use)."""

    def __init__(self, location: str | Path) -> None:
        self.url: str | None = None
        self.path: Path | None = None
        if is_database_url(location):
            scheme = str(location).split("://", 1)[0].lower()
            if scheme == "sqlite" or scheme.startswith("sqlite+"):
                self.path = _sqlite_path(str(location))
            elif scheme in _PG_DRIVERS:
                self.url = "postgresql+psycopg2://" + str(location).split("://", 1)[1]
            else:
                raise ValueError(
                    f"unsupported provenance ledger URL scheme {scheme!r}: use a sqlite path, sqlite:///path, "
                    "postgresql://... or postgresql+psycopg2://..."
                )
        else:
            self.path = Path(location)

    @property
    def location(self) -> str:
        """Where the ledger is (password hidden), for messages."""
        return _redacted(self.url) if self.url else str(self.path)

    def __repr__(self) -> str:
        return f"Ledger({self.location!r})"

    # -- sqlite --------------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        assert self.path is not None
        self._ensure_schema()
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as conn:
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn

    def _ensure_schema(self) -> None:
        assert self.path is not None
        key = self.path.resolve()
        if key in _initialised and self.path.exists():
            return
        with _init_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
            _initialised.add(key)

    # -- PostgreSQL ----------------------------------------------------------------------------

    def _engine(self) -> Any:
        """This process's engine for the URL, with the schema in place (created once per process)."""
        assert self.url is not None
        engine = _engines.get(self.url)
        if engine is not None:
            return engine
        import sqlalchemy as sa

        with _init_lock:
            engine = _engines.get(self.url)
            if engine is None:
                engine = sa.create_engine(self.url, pool_pre_ping=True, future=True)
                with engine.begin() as conn:
                    # in place already (table and its three triggers): no DDL, so a role that may only
                    # INSERT and SELECT can stamp; else create them (the table's owner must do this once)
                    if conn.execute(sa.text(_PG_READY)).scalar() != 3:
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
                        for statement in _PG_SCHEMA:
                            conn.execute(sa.text(statement))
                _engines[self.url] = engine
        return engine

    def _pg_query(self, sql: str, params: dict[str, Any]) -> list[Any]:
        import sqlalchemy as sa

        with self._engine().connect() as conn:
            return list(conn.execute(sa.text(sql), params).mappings())

    # -- the API (both backends) ---------------------------------------------------------------

    def contains(self, provenance_id: str) -> bool:
        if self.url is not None:
            return bool(self._pg_query("SELECT 1 AS one FROM provenance WHERE id = :id", {"id": provenance_id}))
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM provenance WHERE id = ?", (provenance_id,)).fetchone() is not None

    def append(self, record: LedgerRecord) -> None:
        """Record one output. Raises :class:`DuplicateIdError` if the id exists (nothing is changed)."""
        fields = record.to_dict()
        if self.url is not None:
            import sqlalchemy as sa

            sql = f"INSERT INTO provenance ({', '.join(fields)}) VALUES ({', '.join(':' + f for f in fields)})"
            try:
                with self._engine().begin() as conn:
                    conn.execute(sa.text(sql), fields)
            except sa.exc.IntegrityError as exc:
                if getattr(exc.orig, "pgcode", None) == "23505":  # unique_violation: the primary key
                    raise DuplicateIdError(
                        f"provenance id {record.id} is already in the ledger {self.location}"
                    ) from exc
                raise
            return
        sql = f"INSERT INTO provenance ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})"
        try:
            with self._connect() as conn:
                conn.execute(sql, tuple(fields.values()))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise DuplicateIdError(f"provenance id {record.id} is already in the ledger {self.location}") from exc
            raise

    def get(self, provenance_id: str) -> LedgerRecord | None:
        """The record of ``provenance_id`` (16 hex characters), or None. Never creates a sqlite file."""
        if self.url is not None:
            rows = self._pg_query("SELECT * FROM provenance WHERE id = :id", {"id": provenance_id.lower()})
            return LedgerRecord(**dict(rows[0])) if rows else None
        assert self.path is not None
        if not self.path.exists():
            return None
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM provenance WHERE id = ?", (provenance_id.lower(),)).fetchone()
        return LedgerRecord(**dict(row)) if row is not None else None

    def count(self) -> int:
        if self.url is not None:
            return int(self._pg_query("SELECT count(*) AS n FROM provenance", {})[0]["n"])
        assert self.path is not None
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return int(conn.execute("SELECT count(*) FROM provenance").fetchone()[0])
