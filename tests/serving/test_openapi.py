"""Every service's OpenAPI document: its own title, description and version, no BentoML boilerplate,
and a description and an example for every endpoint (serving/common.py ``document``).

Built in process from the service classes (no server, no model needed); the pages a browser gets
are checked over HTTP in test_noise2score_http.py and test_bento.py.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAPERS = sorted(p.stem for p in (ROOT / "serving").glob("*.py") if re.search(r"^Service = ", p.read_text(), re.M))


@pytest.fixture(scope="module", params=PAPERS)
def service(request):
    return request.param, importlib.import_module(f"serving.{request.param}").Service


def test_info_is_the_service_s_own(service) -> None:
    paper, svc = service
    info = svc.openapi_spec.asdict()["info"]
    assert paper.replace("_", " ").lower()[:5] in (info["title"] + info["description"]).lower()
    assert "bentoml" not in info["title"].lower() and "contact" not in info
    assert info["version"] not in ("None", "", "0") and len(info["description"]) > 100


def test_every_endpoint_has_a_description_and_an_example(service) -> None:
    paper, svc = service
    spec = svc.openapi_spec.asdict()
    for api in svc.apis.values():
        op = spec["paths"][api.route]["post"]
        text = op.get("description", "")
        assert len(text.split("Example")[0].strip()) > 20, f"{paper} {api.route}: no description"
        assert f"http://127.0.0.1:3000{api.route}" in text, f"{paper} {api.route}: no example request"
        body = json.loads((ROOT / "examples" / paper / f"{api.route.strip('/')}.json").read_text())
        files = {k for k, v in body.items() if isinstance(v, str) and v.startswith("@")}
        for name in files:  # the files the example names exist
            assert (ROOT / "examples" / paper / body[name][1:]).is_file(), f"{paper} {api.route}: {body[name]}"
        if not files:  # a JSON body: valid for the endpoint's input model as it is now
            api.input_spec.model_validate(body)
            content = op["requestBody"]["content"]
            assert "application/json" not in content or content["application/json"]["example"] == body


def test_no_boilerplate_in_the_page() -> None:
    from serving.asgi import _DOCS_PAGE

    assert "googletagmanager" not in _DOCS_PAGE and "github" not in _DOCS_PAGE.lower()
    assert "{title}" in _DOCS_PAGE
