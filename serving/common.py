"""The skeleton every paperops HTTP service is built on: defaults, model loading, guard, budgets.

What a service gets from ``paper_service(...)`` and ``PaperService``:

* defaults: bind 127.0.0.1:3000, one worker, ``traffic`` timeout and max_concurrency, torch
  intra-op threads (``$PAPEROPS_TORCH_THREADS``, else the service's default);
* model loading that fails fast: no MLflow store, no champion, a bad version or an unloadable
  model stops ``bentoml serve`` within seconds with exit code 3 and a message saying what to do
  (BentoML 1.4 would log the exception from ``__init__`` and respawn the worker forever, see
  ``fail_startup``);
* the request guard of serving/edge.py on every endpoint (bounded parsing, no server-side fetch,
  bad input -> 400) and the middlewares of serving/asgi.py (one error shape ``{"error": "..."}``
  for every 4xx/5xx, the body bound, ``/docs``);
* a per-request time budget (``self.budget()``, a ``should_stop`` callback for the paper's solver
  loop; a request past it stops computing and answers 504);
* bounded upload readers (``read_upload``, ``read_npy``: the .npy header is checked before any
  allocation);
* the OpenAPI page's title, description and version, and the examples of ``examples/<paper>/``;
* ``X-Model`` and ``X-Model-Version`` headers on every response (which model answered).

Adding a service (``serving/<paper>.py``)::

    @paper_service(paper="mypaper", title="...", description=__doc__, timeout=60, max_concurrency=32,
                   max_request_bytes=8 * 1024 * 1024)
    class MyPaper(PaperService):
        PAPER = "mypaper"                     # the registry name; the model is loaded before setup()

        def setup(self) -> None:              # optional: imports of the paper's predict code
            from components.papers.mypaper import predict
            self.predict_fn = predict

        @bentoml.api(route="/predict")
        def predict(self, x: Annotated[list[float], Field(max_length=1000)]) -> dict:
            return {"y": self.predict_fn(self.model, x, should_stop=self.budget()).tolist()}

    Service = MyPaper

Bound every input with pydantic annotations; raise ``ValueError`` (or ``BadInput``) with a message
for input the types cannot express; the guard turns it into a 400. Add the service to the fuzz
(tests/serving/test_fuzz_http.py) and give it an HTTP test of its own. Its example requests live in
``examples/<paper>/<route>.json`` (examples/make_examples.py): they become the OpenAPI page's
examples (``document``), and the README's curl lines that use them are run by
tests/serving/test_readme_http.py. ``paperops build <paper>`` packages the service as a Bento with
its model baked in (serving/bento.py); the service finds that model first (``bento_model``).

Sync endpoints run on ``threads`` threads (default 2): hold ``self.lock`` around the model call
only, so that decoding the next upload and encoding the last answer overlap the forward. A file an
endpoint returns is read into the response in that same thread (serving/edge.py).
"""

from __future__ import annotations

import atexit
import inspect
import io
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from serving import edge
from serving.asgi import DocsPage, ErrorShape, MaxBodySize, ModelHeaders
from serving.model_source import ModelUnavailable, ServedModel, resolve, what_to_do

HOST = "127.0.0.1"
PORT = 3000
FAILURE_FILE_ENV = "PAPEROPS_STARTUP_FAILURE_FILE"
logger = logging.getLogger("paperops.serving")


# ------------------------------------------------------------------------------ fail fast
def _in_bentoml_worker() -> bool:
    """True in a service process started by ``bentoml serve`` (its circus arbiter is the parent)."""
    return sys.argv[0].replace("\\", "/").endswith("_bentoml_impl/worker/service.py")


def _is_bentoml_serve() -> bool:
    """True in the ``bentoml serve`` process itself (the arbiter that imports the service first)."""
    argv0 = sys.argv[0].replace("\\", "/")
    return (argv0.endswith("/bentoml") or argv0.endswith("bentoml/__main__.py")) and "serve" in sys.argv[1:3]


def _exit_if_a_worker_failed(path: str) -> None:
    try:
        message = Path(path).read_text()
        Path(path).unlink()
    except OSError:
        return
    if message:
        print(f"paperops: bentoml serve stopped: {message}", file=sys.stderr, flush=True)
        os._exit(3)


if _is_bentoml_serve() and FAILURE_FILE_ENV not in os.environ:
    # The arbiter: its workers inherit the variable (circus copies the environment when it creates
    # the watcher, after this import). A worker that cannot load its model writes its message there
    # and stops the arbiter with SIGTERM, which alone would exit 0; this hook makes it exit 3.
    _fd, _path = tempfile.mkstemp(prefix="paperops-startup-")
    os.close(_fd)
    os.environ[FAILURE_FILE_ENV] = _path
    atexit.register(_exit_if_a_worker_failed, _path)


def fail_startup(paper: str, message: str) -> None:
    """Stop the service for good: under ``bentoml serve``, the whole server exits 3 with ``message``.

    Raising from ``__init__`` is not enough: BentoML 1.4's ``create_instance`` runs in the ASGI
    lifespan, uvicorn exits the worker with "Application startup failed" and circus respawns it,
    forever, while ``/readyz`` never answers. So the worker prints the message, hands it to the
    arbiter (``$PAPEROPS_STARTUP_FAILURE_FILE``), sends the arbiter SIGTERM and exits. Outside a
    BentoML worker (a test instantiating the class) it raises ``ModelUnavailable``.
    """
    text = f"the {paper} service cannot start: {message}"
    print(f"paperops: {text}", file=sys.stderr, flush=True)
    if not _in_bentoml_worker():
        raise ModelUnavailable(text)
    if path := os.environ.get(FAILURE_FILE_ENV):
        try:
            Path(path).write_text(text)
        except OSError:
            pass
    os.kill(os.getppid(), signal.SIGTERM)
    os._exit(3)


BENTO_MODEL_ARG = "paperops_model"  # the Bento argument naming the BentoML model baked in (serving/bento.py)


def bento_model(paper: str) -> ServedModel | None:
    """The model baked into the Bento being served (``paperops build``), or None outside a Bento.

    ``paperops build`` stores the exported model in BentoML's model store and names its tag in the
    Bento's arguments (``args: {paperops_model: <tag>}``), which ``bentoml serve <bento>`` hands to
    every worker. ``PAPEROPS_MODEL_DIR`` still wins (a folder mounted into a container).
    """
    if os.environ.get("PAPEROPS_MODEL_DIR"):
        return None
    tag = getattr(bentoml.use_arguments(), BENTO_MODEL_ARG, None)
    if not tag:
        return None
    try:
        model = bentoml.models.get(tag)
    except Exception as exc:  # noqa: BLE001 - NotFound or an unreadable store: say which model is missing
        fail_startup(paper, f"the Bento's model {tag} is not in BentoML's model store ({exc})")
        raise AssertionError("unreachable") from None
    version = model.info.labels.get("registry_version")
    version = None if version in (None, "", "unregistered") else version
    return ServedModel(paper, Path(model.path_of(MODEL_FILES)), version, f"Bento model {tag}")


MODEL_FILES = "files"  # the exported model folder inside a BentoML model (serving/bento.py writes it)


def load_model(paper: str) -> tuple[Any, Any, ServedModel]:
    """``(paper_object, model, served)`` of the model to serve, or ``fail_startup``."""
    from components.registry import get_paper

    folder: Path | None = None
    try:
        served = bento_model(paper) or resolve(paper)
        folder = served.path
        spec = get_paper(paper)
        return spec, spec.load(folder), served
    except ModelUnavailable as exc:
        fail_startup(paper, str(exc))
    except Exception as exc:  # noqa: BLE001 - any load failure stops the service with its reason
        fail_startup(
            paper, f"the model in {folder} cannot be loaded ({exc.__class__.__name__}: {exc}). {what_to_do(paper)}"
        )
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------- threads, budget
def torch_threads(default: int | None = None) -> int:
    """Intra-op threads: ``$PAPEROPS_TORCH_THREADS``, else ``default``, else half the cores (>= 1)."""
    if os.environ.get("PAPEROPS_TORCH_THREADS"):
        return max(1, int(os.environ["PAPEROPS_TORCH_THREADS"]))
    return max(1, default if default is not None else (os.cpu_count() or 2) // 2)


class Budget:
    """A request's time budget as the ``should_stop`` callback paper solvers take.

    Started when the endpoint starts (the wait for the model lock counts); ``budget()`` is True once
    ``seconds`` have passed. The solver then raises ``TimeoutError`` and the guard answers 504.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def __call__(self) -> bool:
        return time.monotonic() >= self.deadline

    def check(self, what: str = "the request") -> None:
        """Raise ``TimeoutError`` when the budget is spent (for loops in the service itself)."""
        if self():
            raise TimeoutError(f"{what} stopped")


# --------------------------------------------------------------------------- uploads
def read_upload(upload: Path, limit: int, what: str) -> bytes:
    """The bytes of an uploaded file, refused (400) over ``limit`` bytes before reading."""
    size = upload.stat().st_size
    if size > limit:
        raise ValueError(f"the {what} upload is {size} bytes; the limit is {limit} bytes")
    return upload.read_bytes()


def read_npy(upload: Path, limit: int, max_elements: int, what: str) -> np.ndarray:
    """A numeric .npy upload without pickles, its header checked before anything is allocated.

    Refused (ValueError -> 400): over ``limit`` bytes, not .npy, object dtypes, more than
    ``max_elements`` elements, or a header that declares more data than the file holds (numpy
    would allocate the declared shape first: (10^6, 10^6) float64 is 8 TB, a MemoryError).
    """
    data = read_upload(upload, limit, what)
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except Exception as exc:  # noqa: BLE001 - any unreadable header is the client's
        raise ValueError(f"{what} is not a readable .npy array ({exc})") from None
    if dtype.hasobject or dtype.kind not in "biufc":
        raise ValueError(f"{what} must hold numbers, not {dtype}")
    count = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if count > max_elements:
        raise ValueError(
            f"{what} declares shape {tuple(shape)} ({count} elements); at most {max_elements} are accepted"
        )
    if count * dtype.itemsize > len(data) - f.tell():
        raise ValueError(f"{what} declares shape {tuple(shape)} but the file holds less data (truncated)")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{what} is not a readable .npy array without pickles ({exc})") from None


# ------------------------------------------------------------------------------- services
class PaperService:
    """Base of every service class: loads the paper's model in ``__init__``, then calls ``setup``.

    Attributes set here: ``paper`` (the Paper object), ``model``, ``model_dir``, ``served`` (which
    model: registry version and origin), ``lock`` (one forward at a time, if the service runs sync
    endpoints on more threads).
    """

    PAPER: str = ""
    TORCH_THREADS: int | None = None  # None: half the cores
    BUDGET_S: float = 60.0  # set by paper_service
    SERVED: ServedModel | None = None  # the model this process serves, once loaded

    def __init__(self) -> None:
        import torch

        # Measured on the 2-core dev box with another process busy: a 128x128 Noise2Score forward
        # took 7 ms on 1 thread and 300 ms on 2 (OpenMP threads waiting for a core they cannot get).
        torch.set_num_threads(torch_threads(self.TORCH_THREADS))
        self.lock = threading.Lock()
        self.paper, self.model, self.served = load_model(self.PAPER)
        self.model_dir = self.served.path
        type(self).SERVED = self.served  # for the X-Model-Version header and the OpenAPI page
        logger.info("paperops: serving %s", self.served.describe())
        self.setup()

    def setup(self) -> None:
        """Per-service initialisation after the model is loaded (imports of the paper's code)."""

    def budget(self) -> Budget:
        """A fresh per-request time budget (``should_stop`` callback) of ``BUDGET_S`` seconds."""
        return Budget(self.BUDGET_S)


class _Service(bentoml.Service):  # type: ignore[misc]
    """BentoML's Service with the OpenAPI ``info`` (title, description, version) of the paper."""

    @property
    def openapi_spec(self) -> Any:
        import attrs

        spec = super().openapi_spec
        title, description, version = getattr(self.inner, "__openapi_info__", (self.name, None, "None"))
        description = description or spec.info.description
        served = getattr(self.inner, "SERVED", None)
        if served is not None:  # known in the worker that answers /docs.json, once the model is loaded
            description = f"{description}\n\n**Model served:** {served.describe()}."
        info = attrs.evolve(spec.info, title=title, description=description, version=version)
        spec = attrs.evolve(spec, info=info)

        paper = self.name

        class Spec(type(spec)):  # type: ignore[misc]
            def asdict(self) -> dict[str, Any]:
                return openapi30(document(super().asdict(), paper))

        return Spec(**{f.name: getattr(spec, f.name) for f in attrs.fields(type(spec)) if f.init})


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(paper: str, route: str) -> dict[str, Any] | None:
    """``examples/<paper>/<route>.json`` (see examples/make_examples.py), or None."""
    path = EXAMPLES / paper / f"{route.strip('/')}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def curl(paper: str, route: str, body: dict[str, Any], output: str | None = None) -> str:
    """The curl command that sends ``body`` (an example) to ``route`` from a checkout of the project.

    A body with a value ``"@file"`` is a multipart form (the file from ``examples/<paper>/``);
    otherwise the JSON file itself is the request body.
    """
    url = f"http://127.0.0.1:{PORT}{route}"
    out = f" -o {output}" if output else ""
    if not any(isinstance(v, str) and v.startswith("@") for v in body.values()):
        return f"curl -H 'content-type: application/json' -d @examples/{paper}/{route.strip('/')}.json {url}{out}"
    fields = []
    for key, value in body.items():
        if isinstance(value, str) and value.startswith("@"):
            fields.append(f"-F {key}=@examples/{paper}/{value[1:]}")
        else:
            fields.append(f"-F {key}={value if isinstance(value, str) else json.dumps(value)}")
    return f"curl {' '.join(fields)} {url}{out}"


OUTPUT_SUFFIX = {"image/png": "png", "application/octet-stream": "npy"}


def document(spec: dict[str, Any], paper: str) -> dict[str, Any]:
    """Finish BentoML's OpenAPI document: no BentoML contact, dedented descriptions, and every API
    operation's example from ``examples/<paper>/<route>.json``: the curl command that sends it (in
    the description) and the values Swagger UI's "Try it out" starts from."""
    spec.get("info", {}).pop("contact", None)  # "BentoML Team": not who answers for this service
    for route, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            if op.get("description"):
                op["description"] = inspect.cleandoc(op["description"])
            body = example(paper, route) if method == "post" else None
            if body is None:
                continue
            content = op.get("requestBody", {}).get("content", {})
            multipart = any(isinstance(v, str) and v.startswith("@") for v in body.values())
            if not multipart and "application/json" in content:
                content["application/json"]["example"] = body
            for form in (content.get("multipart/form-data"), content.get("application/x-www-form-urlencoded")):
                props = (form or {}).get("schema", {}).get("properties", {})
                for key, value in body.items():
                    if key in props and not (isinstance(value, str) and value.startswith("@")):
                        props[key]["example"] = value
            responses = op.get("responses", {})
            ok = responses.get(200) or responses.get("200") or {}
            produced = next(iter(ok.get("content", {})), "")
            suffix = OUTPUT_SUFFIX.get(produced)
            output = f"{route.strip('/')}.{suffix}" if suffix else None
            command = curl(paper, route, body, output)
            op["description"] = f"{op.get('description', '')}\n\nExample (from the project's root):\n\n    {command}"
    return spec


def openapi30(node: Any) -> Any:
    """Pydantic's numeric ``exclusiveMinimum: x`` (OpenAPI 3.1) as ``minimum: x, exclusiveMinimum:
    true``, what the OpenAPI 3.0 document BentoML publishes requires (schemathesis and other 3.0
    clients refuse the spec otherwise)."""
    if isinstance(node, list):
        return [openapi30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi30(v) for k, v in node.items()}
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(exclusive)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[bound], out[exclusive] = value, True
    return out


def _version() -> str:
    """paperops' version: the installed package's, else pyproject.toml's (a Bento ships the source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("paperops")
    except PackageNotFoundError:
        import tomllib

        try:
            with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, ValueError):
            return "unknown"


def paper_service(
    *,
    paper: str,
    title: str,
    description: str | None,
    timeout: float,
    max_concurrency: int,
    max_request_bytes: int,
    budget_s: float | None = None,
    workers: int = 1,
    threads: int = 2,
) -> Callable[[type], Any]:
    """Make a ``PaperService`` subclass a BentoML service with the house defaults and guard.

    Args:
        paper: registry name (also the BentoML service name).
        title, description: the OpenAPI page's (Swagger UI at / and /docs).
        timeout: BentoML's traffic timeout (it answers 504 but cannot stop a running thread).
        max_concurrency: requests in flight (queued ones included) before BentoML answers 429.
        max_request_bytes: body bound (413 above it, before the body is read).
        budget_s: per-request compute budget; default ``$PAPEROPS_REQUEST_BUDGET_S`` or 0.8 timeout,
            so the solver stops (504 with a message) before BentoML's own timeout fires.
        threads: threads that run the sync endpoints (BentoML's default is 1). With 2, one request's
            upload decoding and answer encoding overlap another's forward, which ``self.lock``
            keeps one at a time (benchmarks/serving.py measures the share of the bare forward's rate).
    """

    def decorate(cls: type) -> Any:
        env_budget = os.environ.get("PAPEROPS_REQUEST_BUDGET_S")
        cls.BUDGET_S = float(env_budget) if env_budget else (budget_s if budget_s is not None else 0.8 * timeout)
        cls.__openapi_info__ = (title, description, _version())
        svc = bentoml.service(
            cls,
            name=paper,
            http={"host": HOST, "port": PORT},
            traffic={"timeout": timeout, "max_concurrency": max_concurrency},
            workers=workers,
            threads=threads,
            service_class=_Service,
        )
        edge.install(svc, cls.BUDGET_S)

        def served() -> tuple[str, str] | None:
            s = cls.SERVED
            return None if s is None else (s.paper, s.version or "unregistered")

        svc.add_asgi_middleware(ModelHeaders, served=served)  # first added = outermost of ours
        svc.add_asgi_middleware(ErrorShape)
        svc.add_asgi_middleware(MaxBodySize, max_bytes=max_request_bytes)
        svc.add_asgi_middleware(DocsPage, title=title)
        return svc

    return decorate
