"""The request guard every service gets from serving/common.py: parse, bound, refuse with a 400.

BentoML 1.4 parses a request body with its serde (``_bentoml_impl/serde.py``) before any endpoint
code runs, and the fuzz of issue 18 drew 500s out of that step: ``RecursionError`` (JSON nested
deeper than the parser's limit), ``ValueError`` (an integer of more than 4300 digits), Starlette's
``HTTPException`` raised inside it (multipart without a boundary, over 1,000 fields),
``UnicodeDecodeError`` (a text field holding binary data), ``OSError`` (a filename over 255 bytes
becomes the temp file's name). Worse, ``MultipartSerde.ensure_file`` (and ``JSONSerde`` for a body
that is a URL) does an HTTP GET on any plain string sent where a file is expected.

``parse_request`` replaces that step for every endpoint (``install``): JSON and multipart are
parsed here with bounds, a file field accepts only an uploaded part (nothing named by the client is
fetched or read), unknown fields are refused, and every failure is ``BadInput`` (400) with a
message. ``guard_endpoint`` wraps each endpoint so that ``ValueError``, ``OverflowError`` (e.g.
``level=1e200`` squared), ``MemoryError`` and friends raised by the paper code on a caller's input
answer 400, and ``TimeoutError`` (the request's time budget ran out, serving/deadline.py) 504, all
as ``{"error": "<message>"}``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import mimetypes
import re
from pathlib import Path, PurePath
from typing import Any

from bentoml.exceptions import BadInput
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MAX_FIELDS = 100  # form fields per request (Starlette's default is 1000, then a 500 from BentoML)
MAX_FILES = 100  # file parts per request (EBCLR's /embed takes 64 images)
MAX_FIELD_BYTES = 1024 * 1024  # one non-file form field
MAX_FILENAME_BYTES = 255  # a longer name is refused (it would become a temp file's name)
MAX_INT_DIGITS = 18  # JSON integers: int64-sized; a longer one is refused before int() parses it
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
# What paper code raises on a caller's input (UnicodeDecodeError is a ValueError; ArithmeticError
# covers OverflowError, FloatingPointError and ZeroDivisionError); anything else stays a 500.
BAD_INPUT_ERRORS = (ValueError, TypeError, ArithmeticError, RecursionError, MemoryError)


# ----------------------------------------------------------------------------------------- JSON
def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadInput(
            f"an integer of {len(text.lstrip('-'))} digits is out of range (at most {MAX_INT_DIGITS} digits)"
        )
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadInput(f"the number {text[:40]} is out of the floating-point range")
    return value


def _constant(text: str) -> float:
    raise BadInput(f"{text} is not a JSON number; send finite numbers only")


def loads(data: bytes | str, what: str = "the JSON body") -> Any:
    """``json.loads`` with bounds: depth (RecursionError), integer digits, finite floats; 400 on failure."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except BadInput:
        raise
    except RecursionError:
        raise BadInput(f"{what} is nested too deeply") from None
    except UnicodeDecodeError:
        raise BadInput(f"{what} is not UTF-8 text") from None
    except ValueError as exc:
        raise BadInput(f"{what} is not valid JSON ({exc})") from None


def validation_message(exc: ValidationError, limit: int = 5) -> str:
    """``x.3: Input should be a finite number; level: ...`` (field paths and pydantic's messages)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _validate(cls: type, data: dict[str, Any]) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise BadInput(validation_message(exc)) from None
    except RecursionError:
        raise BadInput("the input is nested too deeply") from None


def _field_names(cls: type) -> set[str]:
    """The names a client sends: each field's alias when it has one (``return`` for ``return_``)."""
    return {f.alias or name for name, f in cls.model_fields.items()}


def _check_fields(cls: type, names: list[str]) -> None:
    unknown = [n for n in names if n not in _field_names(cls)]
    if unknown:
        known = ", ".join(sorted(_field_names(cls))) or "none"
        raise BadInput(f"unknown field {unknown[0][:80]!r}; this endpoint takes: {known}")


async def _parse_json(request: Request, cls: type) -> Any:
    data = loads(await request.body() or b"{}")
    if not isinstance(data, dict):
        raise BadInput(f"the JSON body must be an object with the fields {', '.join(sorted(cls.model_fields))}")
    _check_fields(cls, list(data))
    files = [k for k in data if k in cls.multipart_fields]
    if files:  # BentoML would write a string into the file or, for a URL body, fetch it
        raise BadInput(
            f"{files[0]!r} is a file: send it as a multipart upload (curl -F {files[0]}=@file.png); "
            "URLs and text are not fetched or read"
        )
    return _validate(cls, data)


# ------------------------------------------------------------------------------------ multipart
def _safe_filename(name: str | None) -> str:
    if name is None:
        return "upload"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        raise BadInput(f"an upload's filename is over {MAX_FILENAME_BYTES} bytes")
    # BentoML names the temp file after the upload: keep a harmless suffix only
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit("/", 1)[-1])[-64:] or "upload"


async def _text(value: str | UploadFile, name: str) -> str:
    if isinstance(value, str):
        return value
    raw = await value.read(MAX_FIELD_BYTES + 1)
    if len(raw) > MAX_FIELD_BYTES:
        raise BadInput(f"field {name!r} is over {MAX_FIELD_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"field {name!r} holds binary data; it takes text (a number or a word)") from None


async def _parse_form(request: Request, cls: type) -> Any:
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except UnicodeDecodeError:
        raise BadInput("a form field is not UTF-8 text; send binary data as a file part") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse the client's body is the client's
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        raise BadInput(f"unreadable multipart body: {detail}") from None
    names = list(dict.fromkeys(form.keys()))
    _check_fields(cls, names)
    data: dict[str, Any] = {}
    for name in names:
        values = form.getlist(name)
        if name in cls.multipart_fields:
            for v in values:
                if not isinstance(v, UploadFile):  # BentoML would fetch it (MultipartSerde.ensure_file)
                    raise BadInput(
                        f"{name!r} must be an uploaded file (a multipart part with a filename); "
                        "URLs and text are not fetched or read"
                    )
                v.filename = _safe_filename(v.filename)
            annotation = cls.model_fields[name].annotation
            if getattr(annotation, "__origin__", None) is list:
                data[name] = values
            elif len(values) > 1:
                raise BadInput(f"send one file in {name!r}, got {len(values)}")
            else:
                data[name] = values[0]
            continue
        if len(values) > 1:
            raise BadInput(f"field {name!r} is given {len(values)} times")
        text = await _text(values[0], name)
        try:  # as BentoML does: a field is JSON when it parses ("50" -> 50), else the string
            data[name] = loads(text, f"field {name!r}")
        except BadInput as exc:
            if "not valid JSON" not in str(exc):
                raise
            data[name] = text
    return _validate(cls, data)


async def parse_request(cls: type, request: Request, serde: Any = None) -> Any:
    """The replacement of BentoML's serde step: the endpoint's input model, or BadInput (400)."""
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media in FORM_TYPES:
        return await _parse_form(request, cls)
    return await _parse_json(request, cls)


# ---------------------------------------------------------------------------------- endpoints
def _error(ctx: Any, status: int, message: str) -> JSONResponse:
    if ctx is not None:  # BentoML copies the context's status onto a returned response
        ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status)


def _mapped(exc: BaseException, ctx: Any, budget_s: float) -> JSONResponse:
    if isinstance(exc, TimeoutError):
        return _error(
            ctx,
            504,
            f"{exc or 'stopped'}: the request ran out of this service's time budget of "
            f"{budget_s:g} s; ask for less work (fewer steps, smaller inputs)",
        )
    if isinstance(exc, BadInput):
        return _error(ctx, 400, str(exc))
    if isinstance(exc, MemoryError):
        return _error(ctx, 400, "the input needs more memory than this service allows; send a smaller one")
    if isinstance(exc, ArithmeticError):
        return _error(ctx, 400, f"a number in the input is out of the range this endpoint computes with ({exc})")
    if isinstance(exc, RecursionError):
        return _error(ctx, 400, "the input is nested too deeply")
    return _error(ctx, 400, str(exc) or exc.__class__.__name__)


def file_response(path: Path, fallback_type: str) -> Response:
    """The bytes of a file an endpoint returned, as the response BentoML would stream from disk.

    BentoML answers a returned ``Path`` with Starlette's ``FileResponse``, which stats, opens and
    reads the file through the event loop's thread pool, three or more hand-offs of the GIL per
    answer. The endpoint's thread reads it here instead (answers are bounded: an image, an array),
    with the same content type and disposition.
    """
    media_type = mimetypes.guess_type(path.name)[0] or fallback_type
    disposition = "inline" if media_type.startswith("image") else "attachment"
    headers = {"content-disposition": f'{disposition}; filename="{path.name}"'}
    return Response(path.read_bytes(), media_type=media_type, headers=headers)


def guard_endpoint(func: Any, ctx_param: str | None, budget_s: float, output_type: str = "") -> Any:
    """Wrap an endpoint: bad-input exceptions -> 400, TimeoutError -> 504, as ``{"error": ...}``;
    a returned file becomes a response built in the endpoint's own thread (``file_response``)."""
    caught = (BadInput, TimeoutError, *BAD_INPUT_ERRORS)

    def finish(result: Any) -> Any:
        if isinstance(result, PurePath) and output_type:
            return file_response(Path(result), output_type)
        return result

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return finish(await func(*args, **kwargs))
            except caught as exc:
                if isinstance(exc, BadInput) and exc.error_code.value != 400:
                    raise
                return _mapped(exc, kwargs.get(ctx_param) if ctx_param else None, budget_s)

        return guarded_async

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return finish(func(*args, **kwargs))
        except caught as exc:
            if isinstance(exc, BadInput) and exc.error_code.value != 400:
                raise
            return _mapped(exc, kwargs.get(ctx_param) if ctx_param else None, budget_s)

    return guarded


def install(service: Any, budget_s: float) -> None:
    """Put the guard on every endpoint of a BentoML ``service`` (parse step and endpoint errors)."""
    for method in service.apis.values():
        method.input_spec.from_http_request = classmethod(parse_request)
        output_type = method.output_spec.mime_type() if _returns_file(method.output_spec) else ""
        method.func = guard_endpoint(method.func, method.ctx_param, budget_s, output_type)


def _returns_file(spec: Any) -> bool:
    root = getattr(spec, "model_fields", {}).get("root")
    annotation = getattr(root, "annotation", None)
    return isinstance(annotation, type) and issubclass(annotation, PurePath)
