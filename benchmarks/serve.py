#!/usr/bin/env python
"""Serving latency and throughput of `bentoml serve`, next to the work it cannot avoid, in one run.

    python benchmarks/serve.py --quick                          # tiny model, few requests: checks it runs
    python benchmarks/serve.py                                  # resnet_9blocks ngf 64 (paper CycleGAN), 256x256
    python benchmarks/serve.py --registry --model cyclegan@champion   # the project's champion instead

Without ``--registry`` it registers a generator in a temporary MLflow store first (trained for
one step: the weights do not matter for speed) and serves it as ``cyclegan@champion``.

Measured, in this order, on the same machine and process set-up:

1. the bare work per 256x256 image, in this process: generator forward (batch 1), PNG decode of the
   input, PNG encode of the output, watermark embedding, and ``stamp_output`` (watermark + encode +
   signed manifest + ledger row); their sum ``forward + decode + stamp`` is what any server must do;
2. ``bentoml serve`` with 1, 4 and 16 concurrent clients (each a keep-alive connection sending
   256x256 PNGs to ``/translate``): p50/p95/p99 latency and throughput; the overhead at p50 is
   ``p50(1 client) / (forward + decode + stamp) - 1`` (target: <= 15%);
3. a soak run (2000 requests at 16 clients): errors, and the resident memory of the whole server
   process tree at request 500 and at the end (target: 0 errors, growth < 10%).

Client and server share the machine's cores; take figures on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BENTOML = str(Path(sys.executable).with_name("bentoml"))
SERVICE = "transfigure.serving.service:Transfigure"


# -- set-up ----------------------------------------------------------------------------------------------
def register_model(root: Path, netg: str, ngf: int) -> str:
    """Train ``netg``/``ngf`` CycleGAN for one step on tiny generated data, register and promote it; returns the version."""
    from mlflow import MlflowClient

    from transfigure.data.datasets import make_dataset
    from transfigure.data.transforms import TransformConfig
    from transfigure.models import CycleGAN
    from transfigure.tracking.runs import register_trained_model, run_tracked_training
    from transfigure.training import TrainingConfig

    data = root / "data"
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB"):
        (data / split).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / split / f"{i}.png")
    ds = make_dataset("unaligned", data, "train", transform=TransformConfig(load_size=32, crop_size=32, flip=False))
    summary = run_tracked_training(
        model=CycleGAN(ngf=ngf, ndf=8, netG=netg),
        dataset=ds,
        training=TrainingConfig(max_steps=1, progress=False),
        output_dir=root / "out",
        tracking={"experiment": "serve-benchmark"},
        params={},
    )
    version = register_trained_model(summary, {"registered_model_name": "cyclegan"})["version"]
    MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).set_registered_model_alias("cyclegan", "champion", version)
    return version


def test_image(size: int, seed: int = 0) -> Image.Image:
    """A smooth colour field with noise: PNG-compresses like a photo, not like flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([128 + 100 * np.sin(6 * x + 4 * y * c + c) for c in range(3)], -1) + rng.normal(
        0, 10, (size, size, 3)
    )
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def median_ms(fn: Any, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bare_timings(model: str, ref: str, size: int, repeat: int) -> dict[str, float]:
    """Forward, codec, watermark and stamp times for one ``size``-px image, in this process."""
    import torch

    from transfigure.data.transforms import tensor_to_pil, to_tensor
    from transfigure.provenance import ModelInfo, embed_watermark, stamp_output
    from transfigure.tracking.registry import load_translator

    translator = load_translator(model, ref)
    img = test_image(size)
    data = png(img)
    x = to_tensor(img).unsqueeze(0)
    out = tensor_to_pil(translator.translate_tensor(x)[0])
    info = ModelInfo(name=model, version="benchmark", variant=translator.variant)

    def decode() -> None:
        Image.open(io.BytesIO(data)).load()

    with torch.inference_mode():
        forward = median_ms(lambda: translator.translate_tensor(x), repeat)
    return {
        "forward": forward,
        "png_decode": median_ms(decode, repeat),
        "png_encode": median_ms(lambda: png(out), repeat),
        "watermark": median_ms(lambda: embed_watermark(out, os.urandom(8)), repeat),
        "stamp_output": median_ms(lambda: stamp_output(out, model=info), repeat),
        "device": str(translator.device),
    }


# -- the server and its clients ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [BENTOML, "serve", SERVICE, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bentoml serve exited:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("server not ready in 180 s")


def run_clients(
    port: int, body: bytes, clients: int, requests: int, on_done: Any = None
) -> tuple[list[float], int, float]:
    """``requests`` POSTs spread over ``clients`` keep-alive connections: (latencies in ms, errors, wall s)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/translate", body=body, headers={"Content-Type": "image/png"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            dt = 1000 * (time.perf_counter() - t0)
            with lock:
                latencies.append(dt)
                errors += not ok
                done = len(latencies)
            if on_done is not None:
                on_done(done)
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - t0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (psutil when installed, else /proc)."""
    try:
        import psutil

        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
    except ImportError:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        total, todo = 0, [pid]
        while todo:
            p = todo.pop()
            todo.extend(children.get(p, []))
            try:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# -- main -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few requests (checks that it runs)")
    parser.add_argument("--registry", action="store_true", help="serve --model from the configured MLflow store")
    parser.add_argument("--model", default="cyclegan@champion", help="with --registry: name@alias|version")
    parser.add_argument("--netG", default="resnet_9blocks", help="generator of the temporary model")
    parser.add_argument("--ngf", type=int, default=64, help="width of the temporary model")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--requests", type=int, help="requests per concurrency level, at least 4 per client (64; --quick 16)"
    )
    parser.add_argument(
        "--soak", type=int, help="requests of the soak run at the largest concurrency, 0 skips it (2000; --quick 200)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.netG, args.ngf = "resnet_6blocks", 8
    args.requests = args.requests if args.requests is not None else (16 if args.quick else 64)
    args.soak = args.soak if args.soak is not None else (200 if args.quick else 2000)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    with tempfile.TemporaryDirectory(prefix="transfigure-serve-bench-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("TRANSFIGURE_LEDGER", str(root / "ledger.sqlite"))
        os.environ.setdefault("TRANSFIGURE_MODEL_CACHE", str(root / "model-cache"))
        if args.registry:
            name, _, ref = args.model.partition("@")
            ref = ref or "champion"
        else:
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlruns.db'}"
            os.chdir(root)
            name, ref = "cyclegan", "champion"
            print(f"registering a {args.netG} ngf {args.ngf} CycleGAN in a temporary store ...", flush=True)
            register_model(root, args.netG, args.ngf)
        os.environ["TRANSFIGURE_MODELS"] = f"{name}@{ref}"

        bare = bare_timings(name, ref, args.size, repeat=3 if args.quick else 10)
        baseline = bare["forward"] + bare["png_decode"] + bare["stamp_output"]
        body = png(test_image(args.size, seed=1))

        port = free_port()
        log = root / "bentoml-serve.log"
        print(f"starting bentoml serve on port {port} ...", flush=True)
        server = start_server(port, log)
        results: dict[str, Any] = {"size": args.size, "bare_ms": bare, "baseline_ms": baseline, "levels": []}
        try:
            run_clients(port, body, clients=2, requests=8)  # warm-up (dispatcher training, caches)
            for clients in args.clients:
                n = max(args.requests, 4 * clients)
                lat, errors, wall = run_clients(port, body, clients, n)
                results["levels"].append(
                    {
                        "clients": clients,
                        "requests": n,
                        "errors": errors,
                        "p50": percentile(lat, 50),
                        "p95": percentile(lat, 95),
                        "p99": percentile(lat, 99),
                        "throughput": n / wall,
                    }
                )
            if args.soak:
                mark = max(1, args.soak // 4)
                rss: dict[str, float] = {}

                def sample(done: int) -> None:
                    if done == mark and "at_mark" not in rss:
                        rss["at_mark"] = tree_rss_mb(server.pid)

                lat, errors, wall = run_clients(port, body, max(args.clients), args.soak, on_done=sample)
                rss["at_end"] = tree_rss_mb(server.pid)
                results["soak"] = {
                    "requests": args.soak,
                    "clients": max(args.clients),
                    "errors": errors,
                    "mark": mark,
                    "rss_mb_at_mark": rss.get("at_mark", float("nan")),
                    "rss_mb_at_end": rss["at_end"],
                    "p50": percentile(lat, 50),
                    "throughput": args.soak / wall,
                }
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def print_table(r: dict[str, Any]) -> None:
    b = r["bare_ms"]
    print(f"\nbare work per {r['size']}x{r['size']} image ({b['device']}, this process), median ms")
    print(
        "| forward | PNG decode | PNG encode | watermark embed | stamp_output (wm + encode + manifest + ledger) | forward + decode + stamp |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {b['forward']:.1f} | {b['png_decode']:.1f} | {b['png_encode']:.1f} | {b['watermark']:.1f} | "
        f"{b['stamp_output']:.1f} | {r['baseline_ms']:.1f} |"
    )
    print("\nbentoml serve, POST /translate (PNG in, stamped PNG out)")
    print("| clients | requests | errors | p50 ms | p95 ms | p99 ms | images/s | p50 overhead vs bare |")
    print("|---|---|---|---|---|---|---|---|")
    for lv in r["levels"]:
        # queueing makes p50 at several clients a throughput figure; the overhead is read at one client
        overhead = f"{100 * (lv['p50'] / r['baseline_ms'] - 1):+.0f}%" if lv["clients"] == 1 else "-"
        print(
            f"| {lv['clients']} | {lv['requests']} | {lv['errors']} | {lv['p50']:.1f} | {lv['p95']:.1f} | "
            f"{lv['p99']:.1f} | {lv['throughput']:.2f} | {overhead} |"
        )
    if "soak" in r:
        s = r["soak"]
        growth = 100 * (s["rss_mb_at_end"] / s["rss_mb_at_mark"] - 1)
        print(
            f"\nsoak: {s['requests']} requests at {s['clients']} clients: {s['errors']} errors, "
            f"{s['throughput']:.2f} images/s, p50 {s['p50']:.1f} ms; server RSS {s['rss_mb_at_mark']:.0f} MB at request "
            f"{s['mark']} -> {s['rss_mb_at_end']:.0f} MB at {s['requests']} ({growth:+.1f}%)"
        )


if __name__ == "__main__":
    sys.exit(main())
