"""Provenance fails closed at start-up: `bentoml serve` binds 127.0.0.1 by default, and refuses to listen
beyond loopback with development keys unless they are configured or TRANSFIGURE_ALLOW_DEV_KEYS=1 says so."""

from __future__ import annotations

import pytest

from _serving import Server, promote, server_env, train_cyclegan
from _support import make_unaligned

pytestmark = pytest.mark.slow

#: no provenance keys at all, whatever the test process has
NO_KEYS = {"TRANSFIGURE_WATERMARK_KEY": "", "TRANSFIGURE_SIGNING_KEY": "", "TRANSFIGURE_SIGNING_CERT": ""}
LOOPBACK = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
ANY = "00000000"  # 0.0.0.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A registered cyclegan@champion and the environment that serves it."""
    root = tmp_path_factory.mktemp("startup")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        registered = train_cyclegan(root / "cyclegan", make_unaligned(root / "unaligned"))
    promote(uri, "cyclegan", registered["version"])
    return root, server_env(root, "cyclegan")


def serve(root, env, **kwargs) -> Server:
    return Server(root, env=env, **kwargs)


@pytest.mark.parametrize("how", ["--host", "BENTOML_HOST"])
def test_refuses_to_listen_beyond_loopback_with_development_keys(tmp_path, how):
    env = {**NO_KEYS, "BENTOML_HOME": str(tmp_path / "bentoml"), "TRANSFIGURE_MODEL_CACHE": str(tmp_path / "c")}
    if how == "BENTOML_HOST":
        server = Server(tmp_path, env={**env, "BENTOML_HOST": "0.0.0.0"}, host=None)
    else:
        server = Server(tmp_path, env=env, host="0.0.0.0")
    out = server.refused(timeout=120)  # on 0.0.0.0 with development keys
    assert "transfigure service cannot start: refusing to serve on 0.0.0.0" in out
    for words in (
        "TRANSFIGURE_WATERMARK_KEY",
        "TRANSFIGURE_SIGNING_KEY",
        "transfigure provenance-cert",
        "TRANSFIGURE_ALLOW_DEV_KEYS=1",
    ):
        assert words in out, words


def test_binds_loopback_only_by_default(store):
    root, env = store
    server = serve(root, {**env, **NO_KEYS}, host=None)
    try:
        server.wait_ready()
        assert server.listening() == {LOOPBACK}
        assert f"listening on http://127.0.0.1:{server.port}" in server.output()
    finally:
        server.stop()


@pytest.mark.parametrize("keys", ["allowed development keys", "configured keys"])
def test_listens_beyond_loopback_with_keys_or_the_switch(store, keys, tmp_path):
    from transfigure.provenance.signing import DEV_CHAIN, DEV_KEY, create_dev_credentials

    root, env = store
    if keys == "configured keys":
        credentials = create_dev_credentials(tmp_path / "signer")  # a chain of our own, configured explicitly
        extra = {
            "TRANSFIGURE_WATERMARK_KEY": "a secret",
            "TRANSFIGURE_SIGNING_KEY": str(credentials / DEV_KEY),
            "TRANSFIGURE_SIGNING_CERT": str(credentials / DEV_CHAIN),
        }
    else:
        extra = {**NO_KEYS, "TRANSFIGURE_ALLOW_DEV_KEYS": "1"}
    server = serve(root, {**env, **extra}, host="0.0.0.0")
    try:
        server.wait_ready()
        assert server.listening() == {ANY}
    finally:
        server.stop()
