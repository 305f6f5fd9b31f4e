"""The web studio: a static page (HTML, vanilla JS, CSS; package data beside this module) mounted on the
service at ``/studio/`` (``Transfigure.mount_asgi_app``), in the same processes as ``/translate`` and
``/verify``.

The page calls the service's own ``/translate``, ``/verify`` and ``/info``: the same validation,
limits, stamping and ledger as any other client, and the same ``{"error", "detail"}`` answers,
which it shows as they are. This app only serves the files and the Models view's data
(:mod:`.catalog`): ``GET /studio/api/models`` and the sample grids it names. Everything is bundled,
nothing is loaded from elsewhere (the Content-Security-Policy allows this origin only), so the
studio works offline. Why a static page and not Gradio: docs/studio.md (measured).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from transfigure.serving.studio.catalog import summary_from_env
from transfigure.serving.validation import error_response

#: where the service mounts the studio
STUDIO_PATH = "/studio"
HERE = Path(__file__).resolve().parent
#: the page's files and their media types (nothing else in this folder is served)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "studio.js": "text/javascript; charset=utf-8",
    "studio.css": "text/css; charset=utf-8",
}
#: this origin only: no CDN, no remote font or script (the studio must work offline); blob: for the
#: images the page makes from the service's answers
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def _asset(name: str) -> Any:
    """The endpoint of one of the page's files."""

    async def endpoint(request: Request) -> Response:
        return FileResponse(HERE / name, media_type=ASSETS[name], headers=HEADERS)

    return endpoint


async def _models(request: Request) -> Response:
    """The Models view's data, grid paths replaced by their URLs (relative to the page)."""
    models: list[dict[str, Any]] = []
    for entry in summary_from_env():
        versions = [
            {**v, "grid": f"api/grid/{entry['model']}/{v['version']}" if v.get("grid") else None}
            for v in entry.get("versions", [])
        ]
        models.append({**entry, "versions": versions})
    return JSONResponse({"models": models}, headers={"Cache-Control": "no-cache"})


async def _grid(request: Request) -> Response:
    """A version's sample grid: only files the main process downloaded are served (looked up, never built
    from the request's path)."""
    model, version = request.path_params["model"], request.path_params["version"]
    for entry in summary_from_env():
        if entry.get("model") != model:
            continue
        for v in entry.get("versions", []):
            if v.get("version") == version and v.get("grid") and Path(v["grid"]).is_file():
                return FileResponse(v["grid"], media_type="image/png", headers={"Cache-Control": "max-age=3600"})
    return error_response(404, "not found", f"no sample grid for {model} version {version}")


def studio_app() -> Starlette:
    """The studio's ASGI app, to mount at :data:`STUDIO_PATH` (``/studio`` without the slash: the service's
    router redirects to ``/studio/``, which the page's relative links need)."""
    get = ["GET", "HEAD"]
    return Starlette(
        routes=[
            Route("/", _asset("index.html"), methods=get),
            *(Route(f"/{name}", _asset(name), methods=get) for name in ASSETS if name != "index.html"),
            Route("/api/models", _models, methods=get),
            Route("/api/grid/{model}/{version}", _grid, methods=get),
        ]
    )
