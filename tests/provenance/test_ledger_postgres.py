"""The provenance ledger in a shared PostgreSQL database (TRANSFIGURE_LEDGER=postgresql://...): the database itself
refuses UPDATE, DELETE and TRUNCATE, ids are unique across writers, and two processes stamping at the same time each
verify the other's outputs through the one ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from transfigure.provenance import Ledger, LedgerRecord, ModelInfo, ProvenanceConfig, stamp_output, verify_image_bytes
from transfigure.provenance.config import DEFAULT_LEDGER
from transfigure.provenance.ledger import DuplicateIdError

SRC = Path(__file__).resolve().parents[2] / "src"


def record(provenance_id: str, **kw) -> LedgerRecord:
    fields = dict(
        id=provenance_id,
        model_name="cyclegan",
        model_version="1",
        model_variant="cyclegan",
        run_id=None,
        created_at="2026-12-01T00:00:00.000Z",
        output_sha256="0" * 64,
        pixel_sha256="1" * 64,
        media_type="image/png",
        width=64,
        height=64,
        key_id="k" * 16,
    )
    return LedgerRecord(**{**fields, **kw})


def test_ledger_locations_from_the_environment(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    url = "postgresql+psycopg2://stamper:secret@db.example:5432/provenance"
    for value, expected in [
        (None, tmp_path / DEFAULT_LEDGER),
        ("ledgers/l.sqlite", tmp_path / "ledgers/l.sqlite"),
        ("sqlite:///ledgers/l.sqlite", tmp_path / "ledgers/l.sqlite"),
        (f"sqlite:///{tmp_path}/abs.sqlite", tmp_path / "abs.sqlite"),
        (url, url),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ]:
        env = {"TRANSFIGURE_WATERMARK_KEY": "k"} | ({"TRANSFIGURE_LEDGER": value} if value else {})
        assert ProvenanceConfig.from_env(env, root=tmp_path).ledger_path == expected, value
    ledger = Ledger(url)
    assert ledger.path is None and ledger.url == url and "secret" not in repr(ledger)
    assert Ledger("postgresql://u@h/db").url == "postgresql+psycopg2://u@h/db"
    assert Ledger(f"sqlite:///{tmp_path}/x.sqlite").path == tmp_path / "x.sqlite"
    with pytest.raises(ValueError, match="unsupported provenance ledger URL scheme"):
        Ledger("mysql://u@h/db")


@pytest.fixture
def pg_ledger_url(postgres_server) -> str:
    return postgres_server.url(postgres_server.new_database("ledger"))


@pytest.mark.slow
def test_postgres_ledger_appends_reads_and_the_database_refuses_changes(pg_ledger_url, postgres_server):
    import psycopg2

    ledger = Ledger(pg_ledger_url)
    assert ledger.count() == 0 and ledger.get("00" * 8) is None
    ledger.append(record("0123456789abcdef"))
    assert ledger.contains("0123456789abcdef") and ledger.count() == 1
    assert ledger.get("0123456789ABCDEF") == record("0123456789abcdef")
    with pytest.raises(DuplicateIdError, match="already in the ledger"):
        Ledger(pg_ledger_url).append(record("0123456789abcdef", model_name="other"))

    # a raw connection (not this code) cannot change or remove a row: the database's triggers refuse
    database = pg_ledger_url.rsplit("/", 1)[1]
    conn = psycopg2.connect(host=postgres_server.host, port=postgres_server.port, user="postgres", dbname=database)
    try:
        for sql, verb in [
            ("UPDATE provenance SET model_name = 'forged'", "updated"),
            ("DELETE FROM provenance", "deleted"),
            ("TRUNCATE provenance", "truncated"),
        ]:
            with pytest.raises(psycopg2.Error, match=f"append-only: rows cannot be {verb}"), conn.cursor() as cur:
                cur.execute(sql)
            conn.rollback()
    finally:
        conn.close()
    assert ledger.get("0123456789abcdef") == record("0123456789abcdef") and ledger.count() == 1


@pytest.mark.slow
def test_a_role_that_may_only_insert_and_select_stamps_but_cannot_drop_the_guard(pg_ledger_url, postgres_server):
    import psycopg2

    Ledger(pg_ledger_url).count()  # the owner creates the table and its triggers once
    database = pg_ledger_url.rsplit("/", 1)[1]
    role = f"stamper_{database}"
    conn = psycopg2.connect(host=postgres_server.host, port=postgres_server.port, user="postgres", dbname=database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN")
        cur.execute(f"GRANT SELECT, INSERT ON provenance TO {role}")
    conn.close()
    stamper_url = pg_ledger_url.replace("postgres@", f"{role}@", 1)
    Ledger(stamper_url).append(record("fedcba9876543210"))
    assert Ledger(stamper_url).get("fedcba9876543210") == record("fedcba9876543210")
    conn = psycopg2.connect(host=postgres_server.host, port=postgres_server.port, user=role, dbname=database)
    try:
        for sql in ("DROP TRIGGER provenance_no_update ON provenance", "UPDATE provenance SET model_name = 'x'"):
            with pytest.raises(psycopg2.Error, match="must be owner|permission denied"), conn.cursor() as cur:
                cur.execute(sql)
            conn.rollback()
    finally:
        conn.close()


@pytest.mark.slow
def test_stamp_draws_a_fresh_id_when_another_writer_took_it(pg_ledger_url, tmp_path, monkeypatch, photo):
    import transfigure.provenance.stamp as stamp_module

    monkeypatch.chdir(tmp_path)
    config = ProvenanceConfig.from_env({"TRANSFIGURE_WATERMARK_KEY": "k", "TRANSFIGURE_LEDGER": pg_ledger_url})
    taken = "aa" * 8
    Ledger(pg_ledger_url).append(record(taken))
    draws = iter([bytes.fromhex(taken), bytes.fromhex("bb" * 8)])
    monkeypatch.setattr(stamp_module.secrets, "token_bytes", lambda n: next(draws))
    # the race: the id looked free when checked, another writer recorded it before our INSERT
    monkeypatch.setattr(Ledger, "contains", lambda self, provenance_id: False)
    stamped = stamp_output(photo("coffee", 96), model=ModelInfo(name="m", version="1"), config=config)
    assert stamped.provenance_id == "bb" * 8
    assert Ledger(pg_ledger_url).get(taken).model_name == "cyclegan"  # the other writer's row is untouched
    monkeypatch.undo()
    assert verify_image_bytes(stamped.data, config=config)["verdict"] == "verified"


WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import numpy as np
    import skimage.data
    from PIL import Image

    from transfigure.provenance import ModelInfo, stamp_output, verify_image_bytes

    role, mine, theirs, mode, n = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    if mode == "stamp":
        photo = skimage.data.astronaut() if role == "a" else skimage.data.coffee()
        base = Image.fromarray(np.asarray(photo)).convert("RGB").resize((128, 128))
        mine.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            stamped = stamp_output(base.rotate(10 * i), model=ModelInfo(name="writer-" + role, version=str(i)))
            (mine / f"{i}.png").write_bytes(stamped.data)
            print(stamped.provenance_id, flush=True)
    else:
        for path in sorted(theirs.glob("*.png")):
            report = verify_image_bytes(path.read_bytes(), source=str(path))
            ledger = report["ledger"] or {}
            print(json.dumps({"verdict": report["verdict"], "id": ledger.get("id"), "model": ledger.get("model_name")}))
    """
)


@pytest.mark.slow
def test_two_processes_stamp_into_one_postgres_ledger_and_verify_each_other(pg_ledger_url, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "TRANSFIGURE_LEDGER": pg_ledger_url,
        "TRANSFIGURE_WATERMARK_KEY": "team ledger test: not a real secret",
    }
    for var in ("TRANSFIGURE_SIGNING_KEY", "TRANSFIGURE_SIGNING_CERT", "TRANSFIGURE_TRUST_ANCHORS"):
        env.pop(var, None)
    # the development signing credentials once, before the writers start (both then sign with them)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from transfigure.provenance import ProvenanceConfig as C; C.from_env().signer_material()",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
    )
    n = 4
    out = {role: tmp_path / f"out_{role}" for role in "ab"}

    def both(mode: str) -> dict[str, str]:
        procs = {
            role: subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    role,
                    str(out[role]),
                    str(out["b" if role == "a" else "a"]),
                    mode,
                    str(n),
                ],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for role in "ab"
        }
        results = {}
        for role, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"writer {role} ({mode}) failed:\n{stderr[-3000:]}"
            results[role] = stdout
        return results

    stamped = {role: text.split() for role, text in both("stamp").items()}
    assert all(len(ids) == n for ids in stamped.values())
    assert len(set(stamped["a"]) | set(stamped["b"])) == 2 * n  # unique across the writers
    assert Ledger(pg_ledger_url).count() == 2 * n

    verified = {role: [json.loads(line) for line in text.splitlines()] for role, text in both("verify").items()}
    for role, other in (("a", "b"), ("b", "a")):
        reports = verified[role]
        assert [r["verdict"] for r in reports] == ["verified"] * n, reports
        assert sorted(r["id"] for r in reports) == sorted(stamped[other])
        assert {r["model"] for r in reports} == {f"writer-{other}"}
