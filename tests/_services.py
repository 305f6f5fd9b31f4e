"""Real services for the team-setup tests: a throwaway PostgreSQL and an S3-compatible server (moto), on loopback.

Both are session-scoped (started once per pytest process, stopped at the end) and are only started by the tests
that ask for them, which are marked ``slow``. Each test takes its own database (:meth:`Postgres.new_database`) and
its own bucket (:meth:`S3Server.new_bucket`), so tests never see each other's rows or objects.

Where a service's programs are missing the tests SKIP with the reason, except in CI (``CI`` set), where they FAIL:
``.ci/run`` installs PostgreSQL, and a team test that silently skips there would prove nothing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["Postgres", "S3Server", "free_port", "mlflow_server", "postgres_server", "s3_server", "service_missing"]

PG_PROGRAMS = ("initdb", "pg_ctl")
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_missing(reason: str) -> None:
    """Skip (outside CI) or fail (in CI) a test whose service cannot be started here."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: team-service tests must run, not skip; .ci/run installs them)")
    pytest.skip(reason)


def pg_bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else the newest /usr/lib/postgresql/*/bin (Debian)."""
    found = [shutil.which(p) for p in PG_PROGRAMS]
    if all(found):
        return Path(found[0]).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name.split(".")[0]))
    for folder in reversed(versions):
        if all((Path(folder) / p).is_file() for p in PG_PROGRAMS):
            return Path(folder)
    return None


@dataclass
class Postgres:
    """A running PostgreSQL cluster: superuser ``postgres`` (trust authentication) on 127.0.0.1:``port``."""

    port: int
    host: str = "127.0.0.1"
    user: str = "postgres"
    created: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """Create a fresh empty database; returns its name."""
        import psycopg2

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        self.created.append(name)
        return name


def _run_as(uid: int | None, gid: int | None, argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: under root, drop to ``uid``/``gid`` with setpriv."""
    if uid is None:
        return argv
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """initdb into a temporary folder, ``pg_ctl start`` on a free loopback port, stop and delete it at the end."""
    bindir = pg_bindir()
    if bindir is None:
        service_missing("PostgreSQL server programs (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        service_missing("psycopg2 is not installed (pip install -e '.[dev]')")
    uid = gid = None
    if os.geteuid() == 0:  # postgres will not run as root: use the postgres account (Debian's), else nobody
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = pwd.getpwnam("nobody")
        uid, gid = account.pw_uid, account.pw_gid
    base = Path(tempfile.mkdtemp(prefix="transfigure-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if uid is not None:
        os.chown(base, uid, gid)
        os.chown(sockets, uid, gid)
    initdb = _run_as(
        uid, gid, [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    )
    init = subprocess.run([*initdb, "--no-locale"], capture_output=True, text=True)
    if init.returncode != 0:
        pytest.fail(f"initdb failed: {init.stdout[-2000:]}{init.stderr[-2000:]}")
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    start = _run_as(
        uid, gid, [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]
    )
    started = subprocess.run(start, capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        pytest.fail(f"pg_ctl start failed: {started.stdout}{started.stderr}{log[-2000:]}")
    try:
        yield Postgres(port=port)
    finally:
        stop = _run_as(uid, gid, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        subprocess.run(stop, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class S3Server:
    """A running moto S3 server on loopback (any credentials are accepted; the tests use ``testing``)."""

    port: int
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables boto3, MLflow and dvc-s3 read: endpoint, credentials, region."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": S3_REGION,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )

    def new_bucket(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """``moto_server`` (moto's standalone S3-compatible server) on a free loopback port, stopped at the end."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.is_file():
        exe_found = shutil.which("moto_server")
        if exe_found is None:
            service_missing("moto_server not found (pip install -e '.[dev]' installs moto[server])")
        exe = Path(exe_found)
    try:
        import boto3  # noqa: F401
    except ImportError:
        service_missing("boto3 is not installed (pip install -e '.[dev]')")
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="transfigure-moto-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = S3Server(port=port)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited: {Path(log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=2):
                    break
            except urllib.error.HTTPError:  # any HTTP answer: the server is up
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer in 60 s: {Path(log.name).read_text()[-2000:]}")
                time.sleep(0.2)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        os.unlink(log.name)


@contextmanager
def mlflow_server(
    backend_store_uri: str, artifacts_destination: str, log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """``mlflow server`` (proxied artifacts: clients need no storage credentials) on a free loopback port, as a
    subprocess with ``env`` added to this environment; yields its URL once /health answers, stops it after."""
    port = free_port()
    exe = Path(sys.executable).with_name("mlflow")
    argv = [str(exe), "server", "--backend-store-uri", backend_store_uri, "--artifacts-destination"]
    argv += [artifacts_destination, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = log_path.open("w")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"mlflow server exited: {log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no /health in 120 s: {log_path.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker (our own process group)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # uvicorn waits for open connections; nothing here needs them
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
