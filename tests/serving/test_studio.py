"""The web studio in a real headless browser (Debian's chromium + chromedriver, driven by selenium) against a real
``bentoml serve`` on loopback: translate an uploaded image, see and download the stamped output, verify the
downloaded bytes in the Verify view (round trip); SPADE's label map, instance map and seed; the service's own
error for a corrupt file shown in the page; a dropped image the service did not make (not-found); the Models view with its champion and sample grid; and a page that
loads nothing from anywhere but the service (it must work offline).

CI installs chromium and chromedriver (.ci/run); with CI set a missing browser fails the test instead of skipping."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _serving import (
    Server,
    encode,
    label_map,
    ledger_holds,
    noise_image,
    promote,
    server_env,
    train_cyclegan,
    train_spade,
)
from _support import make_labelmap, make_unaligned

pytestmark = pytest.mark.slow

WAIT_S = 90  # a translation on a busy 2-core machine: seconds, not minutes


def _browser_programs() -> tuple[str, str]:
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    why = "chromium and chromedriver are needed (Debian: apt-get install -y chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must run the studio's browser test")
    pytest.skip(why)


@dataclass
class Studio:
    server: Server
    root: Path
    downloads: Path
    driver: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/studio/"

    def wait(self, condition, timeout: float = WAIT_S):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(condition)

    def el(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def open(self) -> None:
        """A fresh page, once the service's /info has filled the model list."""
        self.driver.get(self.url)
        self.wait(lambda d: self.el("translate-model").get_attribute("length") not in (None, "0"))

    def write(self, name: str, data: bytes) -> str:
        path = self.root / "uploads" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def translate(self, path: str, **fields: str) -> None:
        from selenium.webdriver.support.ui import Select

        if "model" in fields:
            Select(self.el("translate-model")).select_by_value(fields.pop("model"))
        self.el("translate-file").send_keys(path)
        for key, value in fields.items():
            field = self.el(f"translate-{key}")
            if field.tag_name == "select":
                Select(field).select_by_value(value)
            else:
                if field.get_attribute("type") != "file":
                    field.clear()
                field.send_keys(value)
        self.el("translate-submit").click()
        self.wait(lambda d: self.el("output-download").is_displayed() or self.el("translate-error").is_displayed())

    def image_width(self, element_id: str) -> int:
        return int(self.driver.execute_script(f"return document.getElementById('{element_id}').naturalWidth"))

    def facts(self, element_id: str) -> dict[str, str]:
        """A <dl> of the page as {term: definition}."""
        from selenium.webdriver.common.by import By

        dl = self.el(element_id)
        terms = [e.text for e in dl.find_elements(By.TAG_NAME, "dt")]
        return dict(zip(terms, (e.text for e in dl.find_elements(By.TAG_NAME, "dd"))))


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """cyclegan@champion (default) and a SPADE with a style encoder and instance maps, served for real, and one
    headless chromium whose downloads land in ``downloads``."""
    chromium, chromedriver = _browser_programs()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    root = tmp_path_factory.mktemp("studio")
    env = server_env(root, "cyclegan,spade", TRANSFIGURE_WATERMARK_KEY="transfigure-studio-tests")
    uri = env["MLFLOW_TRACKING_URI"]
    downloads = root / "downloads"
    downloads.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(root)
        cyclegan = train_cyclegan(root / "cyclegan", make_unaligned(root / "unaligned"))
        spade = train_spade(root / "spade", make_labelmap(root / "labelmap"), use_vae=True)
        promote(uri, "cyclegan", cyclegan["version"])
        promote(uri, "spade", spade["version"])
        server = Server(root)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
            options.add_argument(arg)
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = None
        try:
            server.wait_ready()
            driver = webdriver.Chrome(service=Service(chromedriver), options=options)
            yield Studio(server, root, downloads, driver)
        finally:
            if driver is not None:
                driver.quit()
            server.stop()


def _downloaded(studio: Studio, name: str) -> Path:
    target = studio.downloads / name
    deadline = time.time() + 30
    while time.time() < deadline:
        if target.is_file() and not list(studio.downloads.glob("*.crdownload")):
            return target
        time.sleep(0.2)
    raise AssertionError(f"{name} was not downloaded; the folder holds {sorted(os.listdir(studio.downloads))}")


def test_translate_shows_and_downloads_the_stamped_output_which_verifies(studio):
    studio.open()
    studio.translate(studio.write("photo.png", encode(noise_image(96, 80, seed=5))), width="128")
    assert not studio.el("translate-error").is_displayed(), studio.el("translate-error").text
    assert studio.image_width("input-preview") == 96
    assert studio.image_width("output-image") == 128  # the output is shown, at the size asked for
    pid = studio.facts("output-provenance")["Provenance id"]
    assert ledger_holds(studio.root / "ledger.sqlite", pid)  # the same stamping and ledger as /translate

    link = studio.el("output-download")
    assert link.get_attribute("download") == f"transfigure-{pid}.png"
    link.click()
    downloaded = _downloaded(studio, f"transfigure-{pid}.png")

    # round trip: the downloaded bytes, dropped into the Verify view, verify as this service's output
    studio.el("tab-verify").click()
    studio.el("verify-file").send_keys(str(downloaded))
    studio.wait(lambda d: studio.el("verify-result").is_displayed() or studio.el("verify-error").is_displayed())
    assert not studio.el("verify-error").is_displayed(), studio.el("verify-error").text
    assert studio.el("verify-verdict").text == "verified"
    found = studio.facts("verify-facts")
    assert found["Provenance id"] == pid
    assert (found["Model"], found["Version"]) == ("cyclegan", "1")
    assert "watermark" in found["Survived"] and "the exact bytes" in found["Survived"]


def test_spade_takes_a_label_map_an_instance_map_and_a_seed(studio):
    studio.open()
    from selenium.webdriver.support.ui import Select

    Select(studio.el("translate-model")).select_by_value("spade")
    assert studio.el("spade-fields").is_displayed() and studio.el("style-field").is_displayed()
    labels = studio.write("labels.png", encode(label_map(64, 64)))
    instance = studio.write("instance.png", encode(label_map(64, 64, ids=(0, 1, 2, 3))))
    studio.translate(labels, instance=instance, seed="7", format="jpeg")
    assert not studio.el("translate-error").is_displayed(), studio.el("translate-error").text
    assert studio.image_width("output-image") == 64
    assert studio.el("output-download").get_attribute("download").endswith(".jpg")
    assert "spade v1" in studio.facts("output-provenance")["Model"]


def test_a_corrupt_png_shows_the_service_error_in_the_page(studio):
    data = encode(noise_image(200, 150, seed=3))
    corrupt = data[: len(data) // 2]
    # what the service answers any client for these bytes ...
    expected = studio.server.post_multipart("/translate", {"file": ("broken.png", corrupt, "image/png")}).json()
    assert expected["error"] and expected["detail"]

    studio.open()
    studio.translate(studio.write("broken.png", corrupt))
    box = studio.el("translate-error")
    assert box.is_displayed()
    # ... is what the page says, readable, with the status
    assert box.find_element("css selector", ".error-title").text == expected["error"]
    assert box.find_element("css selector", ".error-detail").text == expected["detail"]
    assert "HTTP 422" in box.text
    assert not studio.el("output-download").is_displayed()

    studio.el("tab-verify").click()
    studio.el("verify-file").send_keys(studio.write("broken-again.png", corrupt))
    studio.wait(lambda d: studio.el("verify-error").is_displayed())
    assert "unusable image" in studio.el("verify-error").text


def test_an_image_dropped_on_verify_that_this_service_did_not_make_is_not_found(studio):
    import base64

    studio.open()
    studio.el("tab-verify").click()
    data = base64.b64encode(encode(noise_image(128, 96, seed=11))).decode()
    # a drop as the browser delivers it: a DataTransfer holding the file
    studio.driver.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "camera.png", {type: "image/png"}));
        document.getElementById("verify-drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));""",
        data,
    )
    studio.wait(lambda d: studio.el("verify-result").is_displayed() or studio.el("verify-error").is_displayed())
    assert studio.el("verify-verdict").text == "not-found"
    assert studio.facts("verify-facts")["Survived"] == "nothing"


def test_models_view_shows_the_champion_its_metrics_and_sample_grid(studio):
    from selenium.webdriver.common.by import By

    studio.open()
    studio.el("tab-models").click()
    studio.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.version")) >= 2)
    cards = {
        c.find_element(By.TAG_NAME, "h3").text: c
        for c in studio.driver.find_elements(By.CSS_SELECTOR, "article.version")
    }
    card = next(c for title, c in cards.items() if title.startswith("cyclegan v1"))
    assert "champion" in card.text and "served" in card.text
    assert "loss_G" in card.find_element(By.CSS_SELECTOR, "table.metrics").text
    grid = card.find_element(By.CSS_SELECTOR, "img.grid")
    studio.wait(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", grid))


def test_the_page_loads_nothing_from_elsewhere(studio):
    """Offline: every resource the page fetched came from the service itself, and the Content-Security-Policy
    (this origin only) was never violated; /studio without its slash leads to the page."""
    studio.driver.get(studio.url.rstrip("/"))
    assert studio.driver.current_url == studio.url
    studio.open()
    origin = studio.url.split("/studio/")[0]
    fetched = studio.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched and all(url.startswith((origin, "blob:", "data:")) for url in fetched), fetched
    logs = studio.driver.get_log("browser")
    assert not [e for e in logs if "Content Security Policy" in e["message"]], logs
