"""`dvc plots show` draws offline: the project's HTML template (.dvc/plots.html, set in .dvc/config) inlines
vega, vega-lite and vega-embed, so the page loads no script from the network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _dvc_support import dvc

LOSSES = "step,loss_G,loss_D_A,loss_D_B\n1,2.5,0.9,0.8\n2,2.1,0.7,0.6\n3,1.8,0.5,0.5\n"
FID = "epoch,step,fid\n2,96,310.5\n4,192,250.25\n"


@pytest.fixture(scope="module")
def page(dvc_project, tmp_path_factory) -> str:
    plots = dvc_project / "data/08_reporting/cyclegan/plots"
    plots.mkdir(parents=True, exist_ok=True)
    (plots / "loss.csv").write_text(LOSSES)
    (plots / "fid.csv").write_text(FID)
    out = tmp_path_factory.mktemp("plots_html")
    dvc(dvc_project, "plots", "show", "-o", str(out), "cyclegan_losses", "cyclegan_fid")
    return (out / "index.html").read_text()


@pytest.mark.slow
def test_plots_page_loads_no_remote_script_and_holds_the_charts(page):
    sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", page, flags=re.IGNORECASE)
    assert not [s for s in sources if re.match(r"(https?:)?//", s)], sources
    assert "cdn.jsdelivr.net" not in page
    # the libraries are inlined ...
    assert "vegaEmbed" in page and "vega-lite" in page and len(page) > 500_000
    # ... and both charts are there, with their data
    assert page.count("vegaEmbed('#") == 2 and "loss_D_A" in page and "250.25" in page


def _node_renders(page: str, tmp: Path) -> list[str]:
    """Render every chart of ``page`` to SVG with node and the page's own inlined libraries (no network)."""
    scripts = re.findall(r"<script type=\"text/javascript\">\n(.*?)\n    </script>", page, flags=re.DOTALL)
    specs = re.findall(r"var spec = (\{.*?\});\s*vegaEmbed", page, flags=re.DOTALL)
    (tmp / "libs.js").write_text("\n;\n".join(scripts[:2]))  # vega + vega-lite (vega-embed needs a DOM)
    (tmp / "specs.json").write_text("[" + ",".join(specs) + "]")
    (tmp / "render.js").write_text(
        "const fs = require('fs'), vm = require('vm');\n"
        "vm.runInThisContext(fs.readFileSync('libs.js', 'utf8'));  // UMD builds: no module here, so globals\n"
        "const specs = require('./specs.json');\n"
        "(async () => { for (const s of specs) {\n"
        "  const view = new vega.View(vega.parse(vegaLite.compile(s).spec), {renderer: 'none'});\n"
        "  console.log(JSON.stringify(await view.toSVG())); } })()"
        ".catch(e => { console.error(e); process.exit(1); });\n"
    )
    proc = subprocess.run(["node", "render.js"], cwd=tmp, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('"')]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the inlined vega")
def test_the_inlined_libraries_draw_the_charts(page, tmp_path):
    svgs = _node_renders(page, tmp_path)
    assert len(svgs) == 2 and all(s.startswith("<svg") and "<path" in s for s in svgs)
