"""``transfigure promote``: exit codes and messages, in process and as the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from mlflow import MlflowClient

from _support import add_evaluated_version, default_dataset, tiny_variant_params, train_and_register
from transfigure.cli import main
from transfigure.tracking.promotion import promote

pytestmark = pytest.mark.slow  # the module trains a tiny model once


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("promote_cli")
    with pytest.MonkeyPatch.context() as mp:
        uri = f"sqlite:///{root / 'mlruns.db'}"
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("USER", "tester")
        mp.chdir(root)
        registered = train_and_register(
            tiny_variant_params("cyclegan", root / "models"), default_dataset(root / "data")
        )
        yield {"uri": uri, "client": MlflowClient(uri), "registered": registered}


def version(store: dict, name: str, **metrics: float) -> str:
    return add_evaluated_version(store["client"], name, store["registered"], **metrics)


def promote_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["promote", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_gate_exit_codes_and_messages(store, capsys):
    v1, v2, v3 = version(store, "cli", fid=40.0), version(store, "cli", fid=38.0), version(store, "cli", fid=41.2)
    code, out, _ = promote_cli(capsys, "cli", "--version", v1)
    assert code == 0 and out.startswith(f"PROMOTED cli v{v1}: no champion yet") and "cli@champion" in out
    code, out, _ = promote_cli(capsys, "cli", "--version", v2)
    assert code == 0 and f"fid 38.0 beats champion v{v1}'s 40.0" in out
    code, out, _ = promote_cli(capsys, "cli", "--version", v3)
    assert code == 1
    assert out.strip() == (
        f"REFUSED cli v{v3}: refused: fid 41.2 is not better than champion v{v2}'s 38.0 by margin 0.0 (lower is better)"
    )
    code, out, _ = promote_cli(capsys, "cli", "--version", v2)
    assert code == 0 and out.startswith("UNCHANGED")


def test_metric_margin_and_json(store, capsys):
    v1, v2 = version(store, "kid", kid=0.50, fid=10.0), version(store, "kid", kid=0.30, fid=20.0)
    assert promote_cli(capsys, "kid", "--version", v1, "--metric", "kid")[0] == 0
    code, out, _ = promote_cli(capsys, "kid", "--version", v2, "--metric", "kid", "--margin", "0.25", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["promoted"] is False and doc["metric"] == "kid" and doc["margin"] == 0.25
    assert doc["candidate_value"] == 0.3 and doc["champion_value"] == 0.5 and doc["direction"] == "min"
    code, out, _ = promote_cli(capsys, "kid", "--version", v2, "--metric", "kid", "--margin", "0.1")
    assert code == 0 and "kid 0.3 beats champion" in out


def test_force_rollback_and_status(store, capsys):
    v1, v2 = version(store, "ops", fid=30.0), version(store, "ops", fid=45.0)
    assert promote_cli(capsys, "ops", "--version", v1)[0] == 0
    code, _, err = promote_cli(capsys, "ops", "--version", v2, "--force")
    assert code == 2 and "--force needs --reason" in err
    code, out, _ = promote_cli(
        capsys, "ops", "--version", v2, "--force", "--reason", "customer demo", "--actor", "alice"
    )
    assert code == 0 and out.startswith(f"FORCED ops v{v2}: forced by alice: customer demo")
    code, _, err = promote_cli(capsys, "ops", "--rollback")
    assert code == 2 and "--rollback needs --reason" in err
    code, out, _ = promote_cli(capsys, "ops", "--rollback", "--reason", "demo over")
    assert code == 0 and out.startswith(f"ROLLED BACK ops v{v1}: rolled back by tester from v{v2} to v{v1}: demo over")
    code, out, _ = promote_cli(capsys, "ops", "--rollback", "--reason", "once more")
    assert code == 1 and "records no champion before" in out
    code, out, _ = promote_cli(capsys, "ops", "--status")
    assert code == 0
    assert f"champion: v{v1} (fid=30.0; promoted by tester at" in out and "challenger: none" in out
    assert "history (3 change(s) of champion)" in out and "force" in out and "rollback" in out
    status = json.loads(promote_cli(capsys, "ops", "--status", "--json")[1])
    assert [h["action"] for h in status["history"]] == ["promote", "force", "rollback"]


def test_usage_errors_exit_2_with_a_message(store, capsys):
    version(store, "usage", fid=1.0)
    code, _, err = promote_cli(capsys, "nope", "--version", "1")
    assert code == 2 and "no registered model 'nope'" in err and "usage" in err  # lists the known models
    code, _, err = promote_cli(capsys, "usage", "--version", "7")
    assert code == 2 and "has no version 7; versions: 1" in err
    code, _, err = promote_cli(capsys, "usage", "--version", "1", "--metric", "accuracy")
    assert code == 2 and "unknown metric 'accuracy'" in err and "psnr" in err
    with pytest.raises(SystemExit) as exc:  # argparse: neither --version, --rollback nor --status
        main(["promote", "usage"])
    assert exc.value.code == 2


def test_console_script_exit_codes_without_traceback(store):
    v1, v2 = version(store, "script", fid=5.0), version(store, "script", fid=6.0)
    exe = shutil.which("transfigure")
    assert exe, "the transfigure console script is installed with the package"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"]}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "promote", *args], capture_output=True, text=True, env=env, timeout=120)

    assert promote("script", v1).promoted
    refused = run("script", "--version", v2)
    assert refused.returncode == 1 and "fid 6.0 is not better than champion" in refused.stdout
    unknown = run("script", "--version", "42")
    assert unknown.returncode == 2 and "has no version 42" in unknown.stderr and "Traceback" not in unknown.stderr
