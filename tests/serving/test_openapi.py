"""The API contract /docs.json publishes (transfigure.serving.openapi): a valid OpenAPI document whose parameters
are exactly what the validation enforces and whose statuses are those the code answers; then, against a real
`bentoml serve`, every answer to the bad-input corpus and to good requests is one the document declares: status,
media type, headers and JSON body schema."""

from __future__ import annotations

import ast
import copy
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

from _serving import BAD_REQUESTS, MAX_BODY, Reply, encode, label_map, multipart, noise_image

SERVING = Path(__file__).resolve().parents[2] / "src" / "transfigure" / "serving"
ROUTES = {"/translate", "/verify", "/info", "/healthz", "/livez", "/readyz", "/metrics", "/docs.json"}


@pytest.fixture(scope="module")
def config():
    from transfigure.serving.config import ServingConfig

    # limits unlike the defaults, so the document shows it takes them from the configuration
    return ServingConfig(min_side=32, max_pixels=2_000_000, max_output_pixels=1_000_000, max_body_bytes=3_000_000)


@pytest.fixture(scope="module")
def spec(config) -> dict[str, Any]:
    from transfigure.serving.openapi import contract
    from transfigure.serving.service import Transfigure

    return contract(Transfigure.openapi_spec.asdict(), config)


def schema_of(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$ref``s to the document's component schemas inlined."""
    prefix = "#/components/schemas/"

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str) and node["$ref"].startswith(prefix):
                return inline(spec["components"]["schemas"][node["$ref"][len(prefix) :]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(copy.deepcopy(schema))


def check_answer(spec: dict[str, Any], method: str, path: str, reply: Reply) -> None:
    """The answer is one the document declares for this route: status, media type, headers, JSON schema."""
    route = path.split("?")[0]
    item = spec["paths"].get(route) or next(
        (i for p, i in spec["paths"].items() if "{" in p and re.fullmatch(re.sub(r"{[^}]+}", "[^/]+", p), route)),
        None,
    )
    if item is None:  # no such route: the document's NotFound answer
        assert reply.status == 404, (method, path, reply.status)
        declared = spec["components"]["responses"]["NotFound"]
    elif method.lower() not in item:
        assert reply.status == 405, (method, path, reply.status)
        declared = spec["components"]["responses"]["MethodNotAllowed"]
    else:
        responses = item[method.lower()]["responses"]
        assert str(reply.status) in responses, (method, path, reply.status, reply.body[:300], sorted(responses))
        declared = responses[str(reply.status)]
    media = reply.headers.get("content-type", "").split(";")[0].strip()
    content = declared.get("content", {})
    if not content:
        assert not reply.body.strip(), (method, path, media, reply.body[:200])
        return
    assert media in content, (method, path, reply.status, media, sorted(content))
    for header in declared.get("headers", {}):
        assert header.lower() in reply.headers, (method, path, header)
    if media == "application/json":
        OAS30Validator(schema_of(spec, content[media]["schema"])).validate(reply.json())


# -- the document --------------------------------------------------------------------------------------------------------
def test_the_document_is_valid_openapi_with_the_project_s_title_version_and_routes(spec):
    import transfigure

    validate_spec(spec)
    assert spec["info"]["title"] == "transfigure" and spec["info"]["version"] == transfigure.__version__
    assert "BentoML" not in spec["info"]["description"] and "/verify" in spec["info"]["description"]
    assert ROUTES <= set(spec["paths"])
    translate = spec["paths"]["/translate"]["post"]
    assert set(translate["requestBody"]["content"]) == {"multipart/form-data", "image/*", "application/octet-stream"}
    assert set(translate["responses"]["200"]["content"]) == {
        "image/png",
        "image/jpeg",
        "image/webp",
        "application/json",
    }
    for path in ("/translate", "/verify", "/info", "/metrics", "/docs.json"):
        assert next(iter(spec["paths"][path].values()))["responses"]["200"]["content"], path
    # one error schema for every error answer of every route
    errors = [
        r
        for item in spec["paths"].values()
        for op in item.values()
        for s, r in op["responses"].items()
        if int(s) >= 400
    ]
    assert errors and all(
        r["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}} for r in errors
    )


def test_parameters_are_the_validation_s_with_the_configured_limits(spec, config):
    """Every enum value and range end the document states is accepted by the validation, and one step past it
    refused; every parameter the validation accepts is declared, as a query parameter and as a form field."""
    from transfigure.serving.validation import TRANSLATE_PARAMS, InputError, parse_translate_params

    translate = spec["paths"]["/translate"]["post"]
    params = {p["name"]: p["schema"] for p in translate["parameters"]}
    form = translate["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert list(params) == list(TRANSLATE_PARAMS) and all(form[name] == params[name] for name in params)
    assert params["width"]["minimum"] == config.min_side and params["height"]["maximum"] == 2_000_000 // 32

    def parse(**wire: str):
        return parse_translate_params(wire, min_side=config.min_side, max_pixels=config.max_pixels)

    def refused(**wire: str) -> str:
        with pytest.raises(InputError) as err:
            parse(**wire)
        assert err.value.status == 400
        return err.value.error

    # quality applies to lossy formats only
    context = {"quality": {"format": "jpeg"}}
    for name, schema in params.items():
        extra = context.get(name, {})
        if "enum" in schema:
            for value in schema["enum"]:
                parse(**{name: value}, **extra)
            assert refused(**{name: "x" + schema["enum"][0]}, **extra) == f"invalid {name}"
        if "minimum" in schema:
            lo, hi = schema["minimum"], schema["maximum"]
            parse(**{name: str(lo)}, **extra)
            parse(**{name: str(hi)}, **extra)
            if lo > 0:
                assert refused(**{name: str(lo - 1)}, **extra) == f"invalid {name}"
            assert refused(**{name: str(hi + 1)}, **extra) == f"invalid {name}"
    assert params["format"].get("default") == "png" and parse().fmt == "PNG"
    assert parse(model="cyclegan-v2.1").model == "cyclegan-v2.1" and refused(model="../x") == "invalid model"


def _status_literals(tree: ast.AST) -> dict[str, set[int]]:
    """The statuses the code answers with: the first int literal passed to each refusal call, by callee."""
    found: dict[str, set[int]] = {}
    calls = ("InputError", "refuse", "error_response", "send_error", "refused", "HTTPException")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in calls:
            continue
        ints = [a.value for a in node.args if isinstance(a, ast.Constant) and type(a.value) is int]
        if name == "refuse" and node.args and isinstance(node.args[0], ast.Constant):
            name = f"refuse:/{node.args[0].value}"
        if ints:
            found.setdefault(name, set()).add(ints[0])
    return found


def test_every_status_the_code_answers_is_declared(spec):
    """A refusal added to the code without the document declaring its status fails here."""
    from transfigure.serving import validation

    declared = {
        path: {s for op in item.values() for s in map(int, op["responses"])} for path, item in spec["paths"].items()
    }
    answered: dict[str, set[int]] = {}
    for module in ("validation", "http", "runner", "middleware", "service"):
        for name, statuses in _status_literals(ast.parse((SERVING / f"{module}.py").read_text())).items():
            answered.setdefault(name, set()).update(statuses)
    answered.setdefault("InputError", set()).update(s for s, _ in validation._UNTRUSTED_ANSWERS.values())
    assert answered["InputError"] >= {400, 413, 415, 422} and answered["send_error"] >= {503, 504}
    # validation's refusals and the model lanes' come from /translate (and /verify, which reads images alike)
    for name in ("InputError", "error_response", "refused", "refuse:/translate"):
        assert answered.get(name, set()) <= declared["/translate"], name
    assert answered.get("refuse:/verify", set()) <= declared["/verify"]
    # the middlewares answer on every route they do not exempt
    for path in ("/translate", "/verify", "/info"):
        assert answered["send_error"] <= declared[path], path
    assert answered["HTTPException"] <= declared["/readyz"]


def test_docs_json_is_served_from_the_contract(config):
    """The middleware serves the contract (computed once) and leaves every other request to the application."""
    import asyncio

    from transfigure.serving.openapi import ContractMiddleware

    calls = []

    async def app(scope, receive, send):
        calls.append(scope["path"])

    async def run(path: str, method: str = "GET") -> list[dict[str, Any]]:
        sent = []

        async def send(message):
            sent.append(message)

        await middleware({"type": "http", "path": path, "method": method}, None, send)
        return sent

    built = itertools.count()
    middleware = ContractMiddleware(app, document=lambda: {"openapi": "3.0.2", "n": next(built)})
    first, again = asyncio.run(run("/docs.json")), asyncio.run(run("/docs.json"))
    assert first[0]["status"] == 200 and first[1]["body"] == again[1]["body"] == b'{"openapi": "3.0.2", "n": 0}'
    assert asyncio.run(run("/docs.json", "POST")) == [] and asyncio.run(run("/translate")) == []
    assert calls == ["/docs.json", "/translate"]


# -- the real service's answers ----------------------------------------------------------------------------------------
def _extra_bad_requests() -> dict[str, tuple[str, str, bytes | None, dict[str, str]]]:
    """Requests beyond the serving tests' corpus: routes, methods, multipart and per-endpoint refusals."""
    png = encode(noise_image(64, 64))
    labels = encode(label_map(64, 64))
    no_file = multipart({}, {"direction": "AtoB"})
    unknown_field = multipart({"picture": ("a.png", png, "image/png")}, {})
    seed_and_style = multipart(
        {"file": ("l.png", labels, "image/png"), "style": ("s.png", png, "image/png")}, {"seed": "1"}
    )
    unknown_ids = multipart({"file": ("l.png", encode(label_map(64, 64, (0, 1, 9, 200))), "image/png")}, {})
    big = multipart({"file": ("big.png", b"\0" * (MAX_BODY + 10), "image/png")}, {})
    image = {"Content-Type": "image/png"}
    return {
        "unknown route": ("GET", "/nowhere", None, {}),
        "unknown route, POST": ("POST", "/translate/x", png, image),
        "GET /translate": ("GET", "/translate", None, {}),
        "PUT /verify": ("PUT", "/verify", png, image),
        "POST /healthz": ("POST", "/healthz", b"", {}),
        "multipart without file": ("POST", "/translate", no_file[0], {"Content-Type": no_file[1]}),
        "multipart unknown field": ("POST", "/translate", unknown_field[0], {"Content-Type": unknown_field[1]}),
        "multipart over the body limit": ("POST", "/translate", big[0], {"Content-Type": big[1]}),
        "seed and style": ("POST", "/translate?model=spade", seed_and_style[0], {"Content-Type": seed_and_style[1]}),
        "unknown label ids": ("POST", "/translate?model=spade", unknown_ids[0], {"Content-Type": unknown_ids[1]}),
        "seed for cyclegan": ("POST", "/translate?seed=3", png, image),
        "jpeg quality 0": ("POST", "/translate?format=jpeg&quality=0", png, image),
        "bad model name": ("POST", "/translate?model=../etc", png, image),
        "verify with a parameter": ("POST", "/verify?format=png", png, image),
        "verify text": ("POST", "/verify", b"hello", {"Content-Type": "text/plain"}),
        "verify empty": ("POST", "/verify", b"", image),
        "verify over the body limit": ("POST", "/verify", b"\0" * (MAX_BODY + 1), image),
        "info not JSON": ("POST", "/info", b"{not json", {"Content-Type": "application/json"}),
        "info over the body limit": ("POST", "/info", b"\0" * (MAX_BODY + 1), {"Content-Type": "application/json"}),
    }


@pytest.mark.slow
def test_every_answer_of_the_real_service_is_declared_in_its_document(served):
    server = served.server
    reply = server.request("GET", "/docs.json")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    spec = reply.json()
    validate_spec(spec)
    assert spec["info"]["x-limits"]["max_body_bytes"] == MAX_BODY

    statuses = set()
    for (path, body, headers), _, _ in BAD_REQUESTS.values():
        answer = server.request("POST", path, body, headers)
        check_answer(spec, "POST", path, answer)
        statuses.add(answer.status)
    for method, path, body, headers in _extra_bad_requests().values():
        answer = server.request(method, path, body, headers)
        check_answer(spec, method, path, answer)
        statuses.add(answer.status)
    for path in ("/translate", "/verify", "/info"):  # a body of no declared length, over the limit
        answer = server.request("POST", path, b"\0" * (MAX_BODY + 1000), {"Content-Type": "image/png"}, chunked=True)
        check_answer(spec, "POST", path, answer)
        statuses.add(answer.status)
    assert statuses >= {400, 404, 405, 413, 415, 422}

    # good requests: every declared image media type, the JSON answer, the other routes
    translate = spec["paths"]["/translate"]["post"]
    formats = next(p["schema"]["enum"] for p in translate["parameters"] if p["name"] == "format")
    png = encode(noise_image(64, 64, seed=21))
    media = set()
    for fmt in formats:
        answer = server.post_image(f"/translate?format={fmt}", png)
        assert answer.status == 200, (fmt, answer.body[:300])
        check_answer(spec, "POST", "/translate", answer)
        media.add(answer.headers["content-type"])
    assert media == set(translate["responses"]["200"]["content"]) - {"application/json"}
    as_json = server.post_multipart(
        "/translate", {"file": ("a.png", png, "image/png")}, {"format": "webp"}, Accept="application/json"
    )
    assert as_json.status == 200 and as_json.json()["media_type"] == "image/webp"
    check_answer(spec, "POST", "/translate", as_json)
    stamped = server.post_image("/translate", png)
    for body in (stamped.body, png):  # ledger record and none
        answer = server.post_image("/verify", body)
        assert answer.status == 200
        check_answer(spec, "POST", "/verify", answer)
    for method, path, body in [
        ("POST", "/info", b"{}"),
        *(("GET", p, None) for p in sorted(ROUTES - {"/translate", "/verify", "/info"})),
    ]:
        answer = server.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        assert answer.status == 200, (path, answer.body[:300])
        check_answer(spec, method, path, answer)

    # the web studio's routes: its page, its data and a sample grid it does not have
    studio = sorted(p for p in spec["paths"] if p.startswith("/studio/") and "{" not in p)
    assert {"/studio/", "/studio/api/models"} <= set(studio)
    for path in (*studio, "/studio/api/grid/nomodel/1"):
        answer = server.request("GET", path, None, {})
        assert answer.status == (404 if "nomodel" in path else 200), (path, answer.body[:300])
        check_answer(spec, "GET", path, answer)
