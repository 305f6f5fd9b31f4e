"""Helpers of the serving tests (and benchmarks/serve.py): tiny registered models, a real
``bentoml serve`` on a free loopback port, and plain HTTP requests to it."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from _support import (  # noqa: F401  - the serving tests import them from here
    bomb_png,
    encode,
    label_map,
    make_labelmap,
    make_unaligned,
    noise_image,
)

PROJECT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).with_name("bentoml"))
SERVICE = "transfigure.serving.service:Transfigure"
#: class colours of the tiny label-map dataset (ids 0..3)
LABEL_NC = 4


def server_env(root: Path, models: str, **extra: str) -> dict[str, str]:
    """The environment of a test server in ``root``: its own MLflow store, ledger, model cache and BentoML
    home, serving ``models`` (``TRANSFIGURE_MODELS``); ``extra`` adds or overrides variables."""
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns.db'}",
        "TRANSFIGURE_MODELS": models,
        "TRANSFIGURE_LEDGER": str(root / "ledger.sqlite"),
        "TRANSFIGURE_MODEL_CACHE": str(root / "model-cache"),
        "BENTOML_HOME": str(root / "bentoml"),
        **extra,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB"), np.float64)
    y = np.asarray(b.convert("RGB"), np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ledger_holds(ledger: Path, provenance_id: str) -> bool:
    """Whether any text column of any table of the sqlite ledger holds ``provenance_id``."""
    with sqlite3.connect(ledger) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in con.execute(f'select * from "{table}"'):
                if any(isinstance(v, str) and provenance_id in v for v in row):
                    return True
    return False


# -- tiny registered models (their data: _support's makers) --------------------------------------------------------------
def train_cyclegan(out: Path, data: Path) -> dict[str, Any]:
    """A 2-step CycleGAN (ngf 4) trained with the real tracked engine and registered as ``cyclegan``."""
    from transfigure.data.datasets import make_dataset
    from transfigure.data.transforms import TransformConfig
    from transfigure.models import CycleGAN
    from transfigure.tracking.runs import register_trained_model, run_tracked_training
    from transfigure.training import TrainingConfig

    ds = make_dataset("unaligned", data, "train", transform=TransformConfig(load_size=32, crop_size=32, flip=False))
    summary = run_tracked_training(
        model=CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks"),
        dataset=ds,
        training=TrainingConfig(max_steps=2, progress=False),
        output_dir=out,
        tracking={"experiment": "serve-test"},
        params={},
    )
    return register_trained_model(summary, {"registered_model_name": "cyclegan"})


def train_spade(out: Path, data: Path, *, use_vae: bool = False) -> dict[str, Any]:
    """A 1-step SPADE (4 classes, ngf 4, instance maps; with ``use_vae`` a style encoder) trained with the
    real tracked engine and registered as ``spade``. With ``use_vae`` the weights start at init gain 1 (not
    0.02), so that z visibly changes the picture after one step (another seed: PSNR ~15 dB, not ~60)."""
    from transfigure.data.datasets import make_dataset
    from transfigure.data.transforms import TransformConfig
    from transfigure.models import SPADE
    from transfigure.tracking.runs import register_trained_model, run_tracked_training
    from transfigure.training import TrainingConfig

    ds = make_dataset(
        "labelmap",
        data,
        "train",
        transform=TransformConfig(load_size=32, crop_size=32, flip=False),
        label_nc=LABEL_NC,
        use_instance=True,
    )
    model = SPADE(
        label_nc=LABEL_NC,
        contain_dontcare_label=False,
        use_instance=True,
        use_vae=use_vae,
        init_gain=1.0 if use_vae else 0.02,
        crop_size=32,
        ngf=4,
        ndf=4,
        spade_hidden=8,
    )
    summary = run_tracked_training(
        model=model,
        dataset=ds,
        training=TrainingConfig(max_steps=1, batch_size=2, progress=False),
        output_dir=out,
        tracking={"experiment": "serve-test-spade"},
        params={},
    )
    return register_trained_model(summary, {"registered_model_name": "spade"})


def promote(tracking_uri: str, name: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).set_registered_model_alias(name, "champion", version)


# -- the server ---------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def image(self) -> Image.Image:
        img = Image.open(io.BytesIO(self.body))
        img.load()
        return img


class Server:
    """``bentoml serve`` in a subprocess on a free port; its output goes to ``log``.

    ``args`` default to the service's import path (any working directory); ``[]`` serves the
    bentofile.yaml of ``cwd``, ``["transfigure:TAG"]`` a built Bento. ``host=None`` passes no
    ``--host`` (the service's default address)."""

    def __init__(
        self,
        cwd: Path,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        host: str | None = "127.0.0.1",
    ):
        self.port = port or free_port()
        self.log = Path(cwd) / f"bentoml-serve-{self.port}.log"
        self._log_file = self.log.open("w")
        cmd = [
            BENTOML,
            "serve",
            *(args if args is not None else [SERVICE]),
            *(["--host", host] if host is not None else []),
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=self._log_file, stderr=subprocess.STDOUT, text=True
        )

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> Server:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bentoml serve exited ({self.proc.returncode}):\n{self.output()[-4000:]}")
            try:
                if self.request("GET", "/readyz", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.output()[-4000:]}")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
        chunked: bool = False,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if chunked:
                conn.putrequest(method, path)
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                step = 256 * 1024
                for i in range(0, len(body or b""), step):
                    part = (body or b"")[i : i + step]
                    conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def post_image(self, path: str, data: bytes, content_type: str = "image/png", **headers: str) -> Reply:
        return self.request("POST", path, data, {"Content-Type": content_type, **headers})

    def post_multipart(
        self, path: str, files: dict[str, tuple[str, bytes, str]], fields: dict[str, str] | None = None, **headers: str
    ) -> Reply:
        body, ctype = multipart(files, fields or {})
        return self.request("POST", path, body, {"Content-Type": ctype, **headers})

    def worker_pids(self, service: str) -> list[int]:
        """Process ids of the workers of ``service`` (e.g. ``transfigure-model``), children of ``bentoml serve``."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_text().split("\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and "--service-name" in argv and argv[argv.index("--service-name") + 1] == service:
                pids.append(int(entry.name))
        return pids

    def listening(self) -> set[str]:
        """The local addresses (hex, as /proc/net/tcp{,6} write them) of the sockets listening on this port."""
        found = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, port = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(port, 16) == self.port:
                    found.add(address)
        return found

    def refused(self, timeout: float) -> str:
        """The output of a server that must refuse to start: fails the test if it is still running after
        ``timeout`` s or exited 0."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server started although it had to refuse: {self.stop()[-2000:]}")
        out = self.stop()
        assert self.proc.returncode != 0, out[-2000:]
        return out

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.log.read_text(errors="replace")


def multipart(files: dict[str, tuple[str, bytes, str]], fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body: ``files`` maps field -> (filename, bytes, content type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, ctype) in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# -- the served test service (tests/serving/conftest.py's ``served`` fixture) and its bad-input corpus --------------
#: limits of the served test service, small enough that the corpus can pass them cheaply
MAX_BODY = 2_000_000
MAX_PIXELS = 1_000_000
MAX_OUTPUT_PIXELS = 300_000  # above the large-job lane's threshold (512x512 = 262144)


@dataclass
class Served:
    server: Server
    root: Path
    cyclegan: dict[str, Any]
    spade: dict[str, Any]

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"


@contextmanager
def serve_champions(root: Path) -> Iterator[Served]:
    """``bentoml serve`` in ``root`` with cyclegan@champion (default) and spade@champion, small body/pixel limits;
    the calling process gets the server's environment and working directory meanwhile (it verifies with its keys,
    ledger and store)."""
    import pytest  # here, not above: benchmarks/serve.py imports this module without pytest's help

    env = server_env(
        root,
        "cyclegan,spade",
        TRANSFIGURE_WATERMARK_KEY="transfigure-serving-tests",
        TRANSFIGURE_MAX_BODY_BYTES=str(MAX_BODY),
        TRANSFIGURE_MAX_PIXELS=str(MAX_PIXELS),
        TRANSFIGURE_MAX_OUTPUT_PIXELS=str(MAX_OUTPUT_PIXELS),
    )
    uri = env["MLFLOW_TRACKING_URI"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(root)  # the test process verifies with the server's keys, ledger and store
        cyclegan = train_cyclegan(root / "cyclegan", make_unaligned(root / "unaligned"))
        spade = train_spade(root / "spade", make_labelmap(root / "labelmap"), use_vae=True)
        promote(uri, "cyclegan", cyclegan["version"])
        promote(uri, "spade", spade["version"])
        server = Server(root)
        try:
            server.wait_ready()
            yield Served(server, root, cyclegan, spade)
        finally:
            server.stop()


def truncated_png() -> bytes:
    data = encode(noise_image(200, 150, seed=3))
    return data[: len(data) // 2]


BAD_REQUESTS = {
    # name: (method args for Server.request, expected status, words in "error")
    "non-image bytes": (("/translate", b"hello, not an image", {"Content-Type": "image/png"}), 422, "not an image"),
    "truncated PNG": (("/translate", truncated_png(), {"Content-Type": "image/png"}), 422, "truncated"),
    "zero bytes": (("/translate", b"", {"Content-Type": "image/png"}), 400, "empty"),
    "text content type": (
        ("/translate", encode(noise_image(64, 64)), {"Content-Type": "text/plain"}),
        415,
        "content type",
    ),
    "json content type": (("/translate", b"{}", {"Content-Type": "application/json"}), 415, "content type"),
    "no content type": (("/translate", encode(noise_image(64, 64)), {}), 415, "content type"),
    "decompression bomb": (("/translate", bomb_png(), {"Content-Type": "image/png"}), 413, "too large"),
    "too many pixels": (
        ("/translate", encode(Image.new("L", (1100, 1000))), {"Content-Type": "image/png"}),
        413,
        "too large",
    ),
    "output too large": (
        ("/translate?width=1100&height=1000", encode(noise_image(64, 64)), {"Content-Type": "image/png"}),
        413,
        "too large",
    ),
    "body over limit": (("/translate", b"\0" * (MAX_BODY + 1), {"Content-Type": "image/png"}), 413, "body too large"),
    "image too small": (("/translate", encode(noise_image(48, 48)), {"Content-Type": "image/png"}), 422, "too small"),
    "bad direction": (
        ("/translate?direction=sideways", encode(noise_image(64, 64)), {"Content-Type": "image/png"}),
        400,
        "direction",
    ),
    "bad format": (
        ("/translate?format=gif", encode(noise_image(64, 64)), {"Content-Type": "image/png"}),
        400,
        "format",
    ),
    "bad width": (("/translate?width=abc", encode(noise_image(64, 64)), {"Content-Type": "image/png"}), 400, "width"),
    "zero height": (("/translate?height=0", encode(noise_image(64, 64)), {"Content-Type": "image/png"}), 400, "height"),
    "quality for png": (
        ("/translate?quality=80", encode(noise_image(64, 64)), {"Content-Type": "image/png"}),
        400,
        "quality",
    ),
    "unknown parameter": (
        ("/translate?widht=64", encode(noise_image(64, 64)), {"Content-Type": "image/png"}),
        400,
        "unknown parameter",
    ),
    "unknown model": (
        ("/translate?model=pix2pix", encode(noise_image(64, 64)), {"Content-Type": "image/png"}),
        404,
        "unknown model",
    ),
    "verify non-image": (("/verify", b"GIF89a-not-really", {"Content-Type": "image/gif"}), 422, "image"),
    "verify bomb": (("/verify", bomb_png(), {"Content-Type": "image/png"}), 413, "too large"),
}
