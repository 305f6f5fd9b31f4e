"""Screenshots for the README, taken with headless chromium: the web studio (Translate with a result, Verify,
Models) and the MLflow page of the served champion's training run, written to ``docs/images/*.png``.

    python docs/screenshots.py                                # serve the project's champion, shoot, stop
    python docs/screenshots.py --url http://127.0.0.1:3000    # a service that is already running

Needs a champion in the project's MLflow store (``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns.db``: the
README quickstart, ``kedro run --pipeline=train_cyclegan``, makes one) and Debian's ``chromium`` and
``chromedriver``. Unless given ``--url`` it starts ``bentoml serve`` on a free loopback port (its own ledger in
a temporary folder, so the project's ledger records nothing); it always starts ``mlflow server`` on the store,
on a free loopback port, and stops what it started. Nothing is fetched from elsewhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: screenshots larger than this are stored as 256-colour PNGs (the README embeds them: keep the repository small)
MAX_BYTES = 250_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not answer {url} within {timeout:g} s")


def default_image() -> Path:
    for folder in ("testA", "trainA"):
        found = sorted((PROJECT / "data/01_raw/default/day2night" / folder).glob("*.png"))
        if found:
            return found[0]
    raise SystemExit("no input image: pass --image, or build the default dataset (kedro run --pipeline=train_cyclegan)")


def browser(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        raise SystemExit("chromium and chromedriver are needed (Debian: apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.add_argument("--force-prefers-reduced-motion")
    return webdriver.Chrome(service=Service(driver), options=options)


def shoot(driver, path: Path, height: int | None = None) -> None:
    """A screenshot of the page (``height``: the window's, default the page's own, 700-1600 px), shrunk to a
    256-colour PNG when larger than :data:`MAX_BYTES`."""
    from PIL import Image

    page = int(driver.execute_script("return document.documentElement.scrollHeight"))
    target = height or min(max(page, 700), 1600)
    driver.set_window_size(1280, target)
    # the window's size includes what the browser draws around the page: grow it until the page gets `target`
    inner = int(driver.execute_script("return window.innerHeight"))
    if inner < target:
        driver.set_window_size(1280, 2 * target - inner)
    time.sleep(0.5)
    driver.save_screenshot(str(path))
    if path.stat().st_size > MAX_BYTES:
        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.relative_to(PROJECT) if path.is_relative_to(PROJECT) else path}: {path.stat().st_size // 1024} KB")


def studio_shots(url: str, image: Path, width: int, out: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    wait = WebDriverWait(driver, 120)
    el = lambda i: driver.find_element(By.ID, i)  # noqa: E731
    try:
        driver.get(url.rstrip("/") + "/studio/")
        wait.until(lambda d: el("translate-model").get_attribute("length") not in (None, "0"))
        el("translate-file").send_keys(str(image))
        el("translate-width").send_keys(str(width))
        el("translate-submit").click()
        wait.until(lambda d: el("output-download").is_displayed() or el("translate-error").is_displayed())
        if el("translate-error").is_displayed():
            raise SystemExit(f"the service refused the translation: {el('translate-error').text}")
        shoot(driver, out / "studio-translate.png")
        el("output-verify").click()
        wait.until(lambda d: el("verify-result").is_displayed() or el("verify-error").is_displayed())
        shoot(driver, out / "studio-verify.png")
        el("tab-models").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.version"))
        wait.until(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('img.grid')].every(i => i.complete && i.naturalWidth)"
            )
        )
        shoot(driver, out / "studio-models.png")
    finally:
        driver.quit()


def mlflow_shot(tracking_uri: str, model: str, out: Path) -> None:
    """The run page of ``model``'s champion in ``mlflow server`` (started here on the store, loopback)."""
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    client = MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(model, "champion")
    run = client.get_run(version.run_id)
    port = free_port()
    cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", "1"],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    driver = None
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, "mlflow server")
        driver = browser(height=1000)
        page = f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        driver.get(page)
        WebDriverWait(driver, 90).until(lambda d: run.info.run_name in d.find_element(By.TAG_NAME, "body").text)
        # MLflow 3 opens on its GenAI workspace with its assistant panel: switch to training runs, close the panel
        for switch in driver.find_elements(By.XPATH, "//*[text()='Model training']"):
            switch.click()
            time.sleep(1)
            driver.get(page)
            WebDriverWait(driver, 90).until(lambda d: run.info.run_name in d.find_element(By.TAG_NAME, "body").text)
            break
        for close in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
            close.click()
        time.sleep(3)  # the panels settle
        shoot(driver, out / "mlflow-run.png", height=1000)
        # the loss curves: the Model metrics tab, filtered
        driver.find_element(By.XPATH, "//*[text()='Model metrics']").click()
        search = WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "input[placeholder='Search metric charts']")
        )
        search.send_keys("loss_")
        time.sleep(4)
        shoot(driver, out / "mlflow-run-losses.png", height=1000)
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running service (default: start bentoml serve on the champion)")
    parser.add_argument("--model", default="cyclegan", help="the registered model to serve and show (default cyclegan)")
    parser.add_argument("--image", type=Path, help="the image to translate (default: the default dataset's first)")
    parser.add_argument("--width", type=int, default=256, help="output width asked for (default 256)")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs/images", help="where the PNGs go")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(PROJECT / "src"))
    from transfigure._env import disable_telemetry
    from transfigure.tracking.config import resolve_tracking_uri

    disable_telemetry()
    tracking_uri = resolve_tracking_uri(project_root=PROJECT)
    args.out.mkdir(parents=True, exist_ok=True)
    image = (args.image or default_image()).resolve()

    server = None
    with tempfile.TemporaryDirectory(prefix="transfigure-screenshots-") as tmp:
        url = args.url
        if url is None:
            port = free_port()
            env = {
                **os.environ,
                "MLFLOW_TRACKING_URI": tracking_uri,
                "TRANSFIGURE_MODELS": args.model,
                "TRANSFIGURE_LEDGER": str(Path(tmp) / "ledger.sqlite"),
            }
            cmd = [str(BIN / "bentoml"), "serve", "transfigure.serving.service:Transfigure", "--host", "127.0.0.1"]
            log = (Path(tmp) / "serve.log").open("w")
            server = subprocess.Popen([*cmd, "--port", str(port)], cwd=PROJECT, env=env, stdout=log, stderr=log)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_http(f"{url}/readyz", server, "bentoml serve")
            except SystemExit:
                print((Path(tmp) / "serve.log").read_text()[-3000:], file=sys.stderr)
                raise
        try:
            studio_shots(url, image, args.width, args.out)
            mlflow_shot(tracking_uri, args.model, args.out)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
