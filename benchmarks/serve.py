#!/usr/bin/env python
"""Serving latency and throughput of `bentoml serve`, next to the work it cannot avoid, in one run.

    python benchmarks/serve.py --quick                          # tiny model, few requests: checks it runs
    python benchmarks/serve.py                                  # resnet_9blocks ngf 64 (paper CycleGAN), 256x256
    python benchmarks/serve.py --registry --model cyclegan@champion   # the project's champion instead
    python benchmarks/serve.py --cost                           # a model worker's time per output size
    python benchmarks/serve.py --mixed                          # small requests while a 2048 px one runs

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

``--cost`` instead measures, in this process, what one model worker spends on one request per
output size (``translate_and_stamp`` of a 256 px photo resized to NxN: forward + watermark +
encode + manifest + ledger) at the model lanes' torch thread counts: the basis of the default
``TRANSFIGURE_MAX_OUTPUT_PIXELS``.

``--mixed`` instead measures fairness: 16 concurrent clients of 256 px requests while 2048 px
requests run back to back (one at a time), then again with nothing else running, ``--rounds``
times, for each server variant (default: one lane, everything in the small-job lane, against the
two lanes as configured by default); p50/p99 of the answered requests, errors counted; target:
p99 under load below twice its unloaded value.

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


def start_server(port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [BENTOML, "serve", SERVICE, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
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


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_clients(
    port: int,
    body: bytes,
    clients: int,
    requests: int,
    on_done: Any = None,
    path: str = "/translate",
    successes_only: bool = False,
    statuses: dict[int, int] | None = None,
) -> tuple[list[float], int, float]:
    """``requests`` POSTs spread over ``clients`` keep-alive connections: (latencies in ms, errors, wall s);
    ``successes_only``: the latencies of the 200 answers only (errors are counted, not timed); ``statuses``
    counts the answers by status (0: no answer)."""
    latencies: list[float] = []
    errors = finished = 0
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        nonlocal errors, finished
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
                resp = conn.getresponse()
                resp.read()
                ok, status = resp.status == 200, resp.status
            except (OSError, http.client.HTTPException):
                ok, status = False, 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            dt = 1000 * (time.perf_counter() - t0)
            with lock:
                if ok or not successes_only:
                    latencies.append(dt)
                errors += not ok
                finished += 1
                if statuses is not None:
                    statuses[status] = statuses.get(status, 0) + 1
                done = finished
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


# -- a model worker's cost per output size ----------------------------------------------------------------
def cost_per_size(model: str, ref: str, sizes: list[int], threads: list[int]) -> list[dict[str, Any]]:
    """Seconds one model worker spends on one request per output size and thread count, in this process."""
    import torch

    from transfigure.inference import translate_and_stamp
    from transfigure.provenance import ModelInfo, ProvenanceConfig
    from transfigure.tracking.registry import load_translator

    translator = load_translator(model, ref, device="cpu")
    photo = test_image(256)
    info = ModelInfo(name=model, version="benchmark", variant=translator.variant)
    config = ProvenanceConfig.from_env()
    translate_and_stamp(translator, [photo], model_info=info, config=config)  # warm-up
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        for size in sizes:
            t0 = time.perf_counter()
            translate_and_stamp(translator, [photo], model_info=info, size=(size, size), config=config)
            rows.append({"size": size, "threads": n, "seconds": time.perf_counter() - t0})
            print(f"  {size}x{size}, {n} thread(s): {rows[-1]['seconds']:.1f} s", flush=True)
    return rows


def print_cost(rows: list[dict[str, Any]], timeout: float) -> None:
    threads = sorted({r["threads"] for r in rows}, reverse=True)
    print("\none model worker, one request: translate_and_stamp of a 256 px photo to NxN (s; share of the timeout)")
    print("| output | pixels | " + " | ".join(f"{n} thread(s)" for n in threads) + " |")
    print("|---|---|" + "---|" * len(threads))
    for size in sorted({r["size"] for r in rows}):
        cells = []
        for n in threads:
            row = next((r for r in rows if r["size"] == size and r["threads"] == n), None)
            cells.append(f"{row['seconds']:.1f} ({100 * row['seconds'] / timeout:.0f}%)" if row else "-")
        print(f"| {size}x{size} | {size * size / 1e6:.2f} M | " + " | ".join(cells) + " |")


# -- fairness: small requests while large ones run ---------------------------------------------------------
def mixed_load(
    port: int, small: bytes, large: bytes, large_size: int, clients: int, requests: int, rounds: int
) -> dict[str, Any]:
    """p50/p99 of ``clients`` concurrent small requests while large ones run back to back, then alone
    (once the large request in flight has finished), ``rounds`` times; latencies of 200 answers, errors counted."""
    run_clients(port, small, clients=2, requests=8)  # warm-up
    samples: dict[str, list[float]] = {"alone": [], "loaded": []}
    errors = {"alone": 0, "loaded": 0}
    statuses: dict[str, dict[int, int]] = {"alone": {}, "loaded": {}}
    large_ms: list[float] = []
    large_status: list[int] = []
    for _ in range(rounds):
        stop = threading.Event()

        def large_client(stop: threading.Event = stop) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
            path = f"/translate?width={large_size}&height={large_size}"
            while not stop.is_set():
                t0 = time.perf_counter()
                conn.request("POST", path, body=large, headers={"Content-Type": "image/png"})
                resp = conn.getresponse()
                resp.read()
                large_ms.append(1000 * (time.perf_counter() - t0))
                large_status.append(resp.status)
            conn.close()

        runner = threading.Thread(target=large_client)
        runner.start()
        time.sleep(2.0)  # the large request is in the model now
        lat, err, _ = run_clients(port, small, clients, requests, successes_only=True, statuses=statuses["loaded"])
        samples["loaded"] += lat
        errors["loaded"] += err
        stop.set()
        runner.join()  # the large request in flight finishes first
        lat, err, _ = run_clients(port, small, clients, requests, successes_only=True, statuses=statuses["alone"])
        samples["alone"] += lat
        errors["alone"] += err
    return {
        "clients": clients,
        "requests": requests * rounds,
        **{
            k: {"p50": percentile(v, 50), "p99": percentile(v, 99), "errors": errors[k], "statuses": statuses[k]}
            for k, v in samples.items()
        },
        "large": {"size": large_size, "ms": large_ms, "status": large_status},
    }


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``"label:VAR=value,VAR=value"`` -> (label, env)."""
    label, _, settings = text.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if item.strip())
    return label, env


def print_mixed(rows: list[dict[str, Any]]) -> None:
    print("\nfairness: 256 px requests from concurrent clients while 2048 px requests run one after another, and alone")
    print(
        "| server | requests | alone: p50 / p99 ms (errors) | while a large request runs: p50 / p99 ms (errors) "
        "| p99 ratio | large requests |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        a, b, lg = r["alone"], r["loaded"], r["large"]
        done = ", ".join(f"{s} in {ms / 1000:.0f} s" for s, ms in zip(lg["status"], lg["ms"]))

        def errors(c: dict[str, Any]) -> str:
            refused = {s: n for s, n in c["statuses"].items() if s != 200}
            return ", ".join(f"{n} x {s or 'no answer'}" for s, n in sorted(refused.items())) or "0"

        print(
            f"| {r['label']} | {r['requests']} each, {r['clients']} clients | {a['p50']:.0f} / {a['p99']:.0f} "
            f"({errors(a)}) | {b['p50']:.0f} / {b['p99']:.0f} ({errors(b)}) | {b['p99'] / a['p99']:.2f}x | {done} |"
        )


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
    parser.add_argument("--cost", action="store_true", help="only: a model worker's time per output size")
    parser.add_argument("--cost-sizes", type=int, nargs="+", default=[256, 512, 1024, 1536, 2048])
    parser.add_argument("--threads", type=int, nargs="+", help="--cost: torch thread counts (the lanes' defaults)")
    parser.add_argument("--mixed", action="store_true", help="only: small requests alone and while large ones run")
    parser.add_argument("--large-size", type=int, default=2048, help="--mixed: side of the large requests")
    parser.add_argument("--rounds", type=int, default=2, help="--mixed: loaded/alone pairs per variant")
    parser.add_argument(
        "--variant",
        action="append",
        metavar="LABEL:VAR=VALUE,...",
        help="--mixed: a server variant (repeatable); default: 'one lane' against 'two lanes' (the defaults)",
    )
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
        if args.cost:
            from transfigure.serving.config import ServingConfig

            serving = ServingConfig.from_env()
            threads = args.threads or sorted({serving.threads, serving.large_threads}, reverse=True)
            print_cost(cost_per_size(name, ref, args.cost_sizes, threads), serving.timeout)
            return 0
        if args.mixed:
            return run_mixed(args, root)

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
            stop_server(server)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run_mixed(args: argparse.Namespace, root: Path) -> int:
    """The fairness rows: each variant's server, small requests alone and while large ones run."""
    big = args.large_size * args.large_size
    # the large requests must be allowed, and finish: the timeout is not what this measures
    common = {"TRANSFIGURE_MAX_OUTPUT_PIXELS": str(big), "TRANSFIGURE_TIMEOUT": "3600"}
    variants = (
        [parse_variant(v) for v in args.variant]
        if args.variant
        else [
            ("one lane", {"TRANSFIGURE_LARGE_OUTPUT_PIXELS": str(big)}),  # everything in the small-job lane
            ("two lanes", {}),
        ]
    )
    small, large = png(test_image(args.size, seed=1)), png(test_image(256, seed=2))
    clients = max(args.clients)
    requests = max(args.requests, 4 * clients)
    rows = []
    for label, env in variants:
        port = free_port()
        print(f"{label}: starting bentoml serve on port {port} ({env or 'defaults'}) ...", flush=True)
        server = start_server(port, root / f"bentoml-serve-{port}.log", {**common, **env})
        try:
            row = mixed_load(port, small, large, args.large_size, clients, requests, args.rounds)
        finally:
            stop_server(server)
        rows.append({"label": label, "env": env, **row})
        print(f"  alone p99 {row['alone']['p99']:.0f} ms, loaded p99 {row['loaded']['p99']:.0f} ms", flush=True)
    print_mixed(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
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
