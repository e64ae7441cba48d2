"""The interpreter behind an HTTP API and a web page (FastAPI): one model loaded once, offline.

    app = create_app(cxrvlm.load())                  # the built-in model; `cxrvlm serve` runs it with uvicorn

- `GET /`: the web page (no script, font or stylesheet from elsewhere). Its script (`page.js`, inline) reads one or
  several films one after another through `/interpret`, a row each with its status and verdict, the chosen one's
  reading below (verdict first, findings with a legend, report, the overlay's layers stacked with a checkbox each
  for boxes, masks and heatmap, JSON and overlay PNG downloads) and the batch as CSV through `/readings.csv`;
  without JavaScript the form posts one film to `/interpret?format=html` and the reading page (`cxrvlm.infer.html`)
  shows in the frame.
- `POST /interpret` (multipart): `file` (PNG/JPEG/TIFF/DICOM), optional `prior` and `prior_days`, `tasks` (comma-
  separated or repeated; default all), `question` (repeatable), `overlay=true` to add the overlay PNG as base64
  (`overlay_png`), `overlay_layers=true` to add its layers (`cxrvlm.infer.overlay.overlay_layers`) as
  {"film", "masks", "heatmap", "boxes"}: base64 PNGs of the overlay's size to stack in that order, null for a layer
  with nothing on it, and "heatmaps": {label: a PNG like "heatmap"} for each call's map, the heatmap's first.
  Neither is part of the reading (`cxrvlm.infer.schema.Reading`). Returns the reading JSON of `cxrvlm interpret`
  (`format=html`: the reading page). A refused request is
  {"image": the file's name or "", "error": reason}: 400 an unreadable file or a bad task, 413 a body over the
  limit, 422 a bad field (a question too long, a negative interval), 503 (with Retry-After) the server busy.
- `POST /readings.csv` (JSON): a list of {"reading": a reading, or the {"image", "error"} of a film that failed,
  "ms": the milliseconds it took, optional} -> the CSV table of `cxrvlm interpret --csv` (`cxrvlm.infer.batch`), a
  row each, as an attachment `readings.csv`; a reading is checked against the schema, and a bad item is a 422
  naming it. The body limit holds here too: a reading is a few kB (masks are RLE, saliency maps small PNGs), so a
  batch of hundreds fits the default.
- `GET /health`: the model, its tasks, the limits and the notice; `GET /openapi.json`: the API's schema, and
  `GET /docs` / `GET /redoc` its pages, offline (their scripts come from the fastapi-offline package).

The limits and how they are held are in `cxrvlm.serve.limits`. Uploads are written under names the server chooses
(the client's name is only reported back, shortened), probed from their headers before they wait for the model,
then read (by the interpreter, as `cxrvlm interpret` reads them), interpreted and drawn one request at a time.
"""
# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations, whose types come from the
# guarded fastapi module inside create_app (FastAPI is optional), so they must be evaluated where they are defined.
import dataclasses
import importlib
import io
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

from cxrvlm.about import NOTICE
from cxrvlm.infer import batch
from cxrvlm.infer.html import render_html
from cxrvlm.infer.inputs import IMAGE_EXTENSIONS, is_interval
from cxrvlm.infer.interpreter import parse_tasks
from cxrvlm.infer.overlay import LAYERS, compose, is_drawn, overlay_layers, render_overlay
from cxrvlm.infer.result import TASKS, check_reading
from cxrvlm.infer.schema import Reading
from cxrvlm.io import ImageReadError, probe_image
from cxrvlm.io.encode import png_base64
from cxrvlm.serve.limits import BodyLimit, Gate, Limits, UploadError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_NAME_CHARS = 100  # a client's file name is reported back at most this long


def require_serve(module: str = "fastapi") -> ModuleType:
    """`module` of the optional `serve` extra (fastapi or one of its submodules, uvicorn), imported on first use so
    the core install runs without it; python-multipart is checked with it (FastAPI's form parsing needs it). An
    ImportError naming the extra otherwise."""
    try:
        importlib.import_module("multipart")
        return importlib.import_module(module)
    except ImportError:
        raise ImportError("the server needs FastAPI, fastapi-offline, uvicorn and python-multipart: "
                          "pip install 'cxrvlm[serve]'") \
            from None


DOCS_ASSETS = "/docs-assets"  # the Swagger UI and ReDoc scripts and styles, from the installed package


@dataclass(frozen=True)
class _Form:
    """The checked fields of one request."""

    tasks: list[str]
    questions: list[str] | None
    prior_days: float | None


@dataclass(frozen=True)
class _Upload:
    """One uploaded file: its field ("file" or "prior"), the client's name (shortened) and where the server put it."""

    field: str
    name: str
    path: Path


def client_name(name: str | None) -> str:
    """The upload's base name as the client gave it, without any folder part or control character, shortened to
    `_NAME_CHARS` (its end kept): only ever reported back, never a path."""
    base = "".join(c for c in Path((name or "").replace("\\", "/")).name if c.isprintable())
    if base in ("", ".", ".."):
        return "upload"
    return base if len(base) <= _NAME_CHARS else base[:_NAME_CHARS - 20] + "..." + base[-17:]


def _check_form(limits: Limits, tasks: list[str], question: list[str], prior_days: float | None) -> _Form:
    """The form's fields against the limits: a bad task list is a 400, a bad question or interval a 422."""
    try:
        wanted = parse_tasks(",".join(tasks) if any(t.strip() for t in tasks) else list(TASKS))
    except ValueError as e:
        raise UploadError(f"tasks: {e}", 400) from None
    questions = [q.strip() for q in question if q.strip()]
    if len(questions) > limits.max_questions:
        raise UploadError(f"question: {len(questions)} questions, more than the limit of {limits.max_questions} "
                          "per request", 422)
    for i, q in enumerate(questions, 1):
        if len(q) > limits.max_question_chars:
            raise UploadError(f"question {i}: {len(q):,} characters, more than the limit of "
                              f"{limits.max_question_chars}", 422)
    if prior_days is not None and not is_interval(prior_days):
        raise UploadError(f"prior_days: must be a finite number of days, 0 or more, got {prior_days}", 422)
    return _Form(wanted, questions or None, prior_days)


def _save(upload: Any, field: str, folder: Path) -> _Upload:
    """Stream an UploadFile to `folder` under the field's name (the client's extension kept when it is an image's:
    a DICOM without its preamble is known by it)."""
    name = client_name(upload.filename)
    suffix = Path(name).suffix.lower()
    path = folder / (field + (suffix if suffix in IMAGE_EXTENSIONS else ""))
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, _CHUNK)
    return _Upload(field, name, path)


def _probe(upload: _Upload, max_pixels: int) -> None:
    """Check the upload from its header (format, size, pixel count) before it waits for the model; a failure is a
    400 naming the client's file and the reason."""
    try:
        probe_image(upload.path, max_pixels)
    except ImageReadError as e:
        raise UploadError(f"{upload.name} ({upload.field}): {e.reason}", 400, upload.name) from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - a decoder that chokes on the file: the file's fault, said so
        log.warning("%s (%s) could not be read: %s: %s", upload.name, upload.field, type(e).__name__, e)
        raise UploadError(f"{upload.name} ({upload.field}): cannot be read ({type(e).__name__}: {e})", 400,
                          upload.name) from None


def _interpret(interpreter: Any, uploads: list[_Upload], form: _Form) -> tuple[dict[str, Any], Any]:
    """One reading and the frontal pixels. An unreadable file is a 400 naming it (the prior as the prior); a model
    failure is a 500 naming the file; the server goes on."""
    name, prior = uploads[0].name, uploads[1:]
    try:
        reading, pixels = interpreter.interpret_with_pixels(
            str(uploads[0].path), tasks=form.tasks, questions=form.questions,
            prior=str(prior[0].path) if prior else None, prior_days=form.prior_days)
    except ValueError as e:  # the reader's errors name the server's path: the client is told its file's name
        message, blamed = _blame(str(e), uploads)
        raise UploadError(message, 400, blamed) from None
    except Exception as e:  # the model failed on this image: say so, keep serving
        log.exception("interpretation of %s failed", name)
        raise UploadError(f"{name}: the interpretation failed ({type(e).__name__}: {e})", 500, name) from None
    reading["image"] = name  # the client's file name, not the server's
    if prior:
        reading["prior"] = uploads[1].name
    return reading, pixels


def _blame(message: str, uploads: list[_Upload]) -> tuple[str, str]:
    """(message, file name) for an error: the server's paths in it replaced by the client's names, and the upload it
    names (else the X-ray, whose name then leads the message)."""
    named = [u for u in uploads if str(u.path) in message]
    for u in uploads:
        message = message.replace(str(u.path), f"{u.name} ({u.field})")
    if not named:
        return f"{uploads[0].name}: {message}", uploads[0].name
    return message, named[0].name


def _respond(interpreter: Any, uploads: list[_Upload], form: _Form, limits: Limits, page: bool,
             overlay: bool, layers: bool) -> Any:
    """The reading JSON, with the overlay and its layers when asked, or the reading page. Runs in the reading's
    turn: the image and the overlay at its size are the memory-heavy part."""
    reading, pixels = _interpret(interpreter, uploads, form)
    if page:
        return render_html(reading, render_overlay(pixels, reading))
    if overlay or layers:
        drawn = overlay_layers(pixels, reading, all_maps=layers)  # drawn once for both
        if overlay:
            reading["overlay_png"] = png_base64(compose(drawn))
        if layers:  # shown, not kept: written fast; a layer with nothing on it is null (its checkbox is disabled)
            fast = {name: png_base64(drawn[name], optimize=False) if is_drawn(drawn[name]) else None
                    for name in LAYERS}
            fast["heatmaps"] = {label: png_base64(im, optimize=False) for label, im in drawn["heatmaps"].items()}
            reading["overlay_layers"] = fast
    return reading


_CSV_ITEM = '{"reading": a reading (or {"image", "error"} of a film that failed), "ms": milliseconds (optional)}'


def _csv_table(body: Any) -> str:
    """The body of `POST /readings.csv`, a list of `_CSV_ITEM`, as the table `cxrvlm interpret --csv` writes (a row
    per reading, `infer.batch`). A bad item is a 422 naming it."""
    if not isinstance(body, list):
        raise UploadError(f"the body must be a JSON list of {_CSV_ITEM}, not {type(body).__name__}", 422)
    table = io.StringIO()
    batch.write_csv([batch.row(*_csv_item(item, f"item {i} of {len(body)}")) for i, item in enumerate(body, 1)],
                    table)
    return table.getvalue()


def _csv_item(item: Any, where: str) -> tuple[dict[str, Any], float | None]:
    """One item's reading and milliseconds, checked (the reading against the schema, so every row can be built);
    `where` names the item in the 422 of a bad one, with its film's name."""
    if not isinstance(item, dict) or not isinstance(item.get("reading"), dict) or set(item) - {"reading", "ms"}:
        raise UploadError(f"{where}: must be {_CSV_ITEM}", 422)
    reading, ms = item["reading"], item.get("ms")
    image = str(reading.get("image") or "")[:_NAME_CHARS]
    where += f" ({image})" if image else ""
    if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms)
                           or ms < 0):
        raise UploadError(f"{where}: ms must be a finite number of milliseconds, 0 or more, got {ms!r}", 422, image)
    problems = check_reading(reading)
    if problems:
        raise UploadError(f"{where}: not a reading: {'; '.join(problems[:3])}"
                          + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""), 422, image)
    return reading, ms


def create_app(interpreter: Any, limits: Limits | None = None) -> Any:
    """A FastAPI app serving `interpreter` (a `cxrvlm.infer.Interpreter`) within `limits` (default: `Limits()`)."""
    limits = limits or Limits()
    fastapi, responses = require_serve(), require_serve("fastapi.responses")
    File, Form, Query, Request, UploadFile = fastapi.File, fastapi.Form, fastapi.Query, fastapi.Request, \
        fastapi.UploadFile
    HTMLResponse = responses.HTMLResponse

    # /docs and /redoc with their scripts served from the fastapi-offline package: FastAPI's own pages fetch them
    # from a CDN, which an offline clinic cannot reach
    app = require_serve("fastapi_offline").FastAPIOffline(
        title="cxrvlm", description=f"Chest X-ray interpretation. {NOTICE}", static_url=DOCS_ASSETS)
    app.state.interpreter, app.state.limits = interpreter, limits
    app.state.gate = gate = Gate(limits.max_queue, limits.timeout)
    app.add_middleware(BodyLimit, limits=limits, refusal=_refusal)

    @app.exception_handler(UploadError)
    async def _refused(request: Request, exc: UploadError) -> Any:
        return _refusal(request.scope, exc)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _form_page(interpreter.name)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": interpreter.name, "tasks": list(TASKS),
                "tb_threshold": interpreter.threshold, "limits": dataclasses.asdict(limits),
                "waiting": gate.waiting, "notice": NOTICE}

    # sync endpoint: FastAPI runs it in a worker thread, so the event loop stays free while the model reads
    @app.post("/interpret", responses={200: {"model": Reading, "description": "the reading (format=json), or an "
                                                                      "HTML page of it (format=html)"}})
    def interpret(file: UploadFile = File(..., description="the X-ray: PNG, JPEG, TIFF or DICOM"),
                  prior: UploadFile | None = File(None, description="an earlier X-ray of the same patient"),
                  prior_days: float | None = Form(None), tasks: list[str] = Form([]),
                  question: list[str] = Form([]),
                  overlay: bool = Form(False, description="true: add `overlay_png`, the overlay as a base64 PNG"),
                  layers: bool = Form(False, alias="overlay_layers", description="true: add `overlay_layers`, "
                                      "{film, masks, heatmap, boxes}: the overlay's layers as base64 PNGs of its size, "
                                      "to stack in that order (transparent but the film; null: nothing to draw), and "
                                      "heatmaps: {label: a layer like heatmap} for TB (when called) and each called "
                                      "finding, the one in heatmap first"),
                  format: str = Query("json", pattern="^(json|html)$")) -> Any:
        since = time.monotonic()
        form = _check_form(limits, tasks, question, prior_days)
        with tempfile.TemporaryDirectory(prefix="cxrvlm-serve-") as tmp:
            uploads = [_save(file, "file", Path(tmp))]
            if prior is not None and prior.filename:
                uploads.append(_save(prior, "prior", Path(tmp)))
            for upload in uploads:  # a bad file is refused before it waits for the model
                _probe(upload, limits.max_pixels)
            with gate.turn(since):
                result = _respond(interpreter, uploads, form, limits, format == "html", overlay, layers)
        return HTMLResponse(result) if format == "html" else result

    # async: no model, and the body is a list of small readings (a few kB each), read and tabled at once
    @app.post("/readings.csv", response_class=responses.Response,
              responses={200: {"content": {"text/csv": {}}, "description": "the table of `cxrvlm interpret --csv`"}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}},
                                             "description": f"a JSON list of {_CSV_ITEM}"}})
    async def readings_csv(request: Request) -> Any:
        """The readings as the CSV table `cxrvlm interpret --csv` writes, a row each, in the body's order: the web
        page's batch download. A body that is not such a list is a 422 naming the bad item."""
        try:
            body = await request.json()
        except ValueError as e:
            raise UploadError(f"the body is not JSON: {e}", 422) from None
        return responses.Response(_csv_table(body), media_type="text/csv",
                                  headers={"Content-Disposition": "attachment; filename=readings.csv"})

    return app


def _refusal(scope: dict[str, Any], exc: UploadError) -> Any:
    """The response to a refused request: the error page when the web page asked, else the JSON."""
    responses = require_serve("fastapi.responses")
    if parse_qs(scope.get("query_string", b"").decode("latin-1")).get("format") == ["html"]:
        return responses.HTMLResponse(_error_page(str(exc)), status_code=exc.status, headers=exc.headers)
    return responses.JSONResponse({"image": exc.image, "error": str(exc)}, status_code=exc.status,
                                  headers=exc.headers)


_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1250px;color:#222;padding:0 1em}
.notice{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em;font-weight:600}
form{display:flex;flex-wrap:wrap;gap:.8em 1.6em;align-items:flex-start;margin:1em 0}
label{display:flex;flex-direction:column;gap:.25em;font-size:.9em}fieldset{border:1px solid #ccc}
iframe{width:100%;height:80vh;border:1px solid #ccc}button{font-size:1em;padding:.4em 1.2em}
#drop{border:2px dashed #999;padding:1em;text-align:center;margin:.5em 0}#drop.over{background:#eef}
#batch{border-collapse:collapse;margin:.8em 0}#batch td,#batch th{border:1px solid #ddd;padding:.25em .6em}
#batch tr.failed{color:#a00}#batch tr[tabindex]{cursor:pointer}.legend{font-size:.85em;color:#555}
#detail img{max-width:100%;border:1px solid #ccc}.error{color:#a00}.report{overflow-wrap:anywhere}
.warn{color:#7a4b00}#answers td,#answers th{padding:.15em .6em;text-align:left}
#overlay{position:relative;display:inline-block;max-width:100%;border:1px solid #ccc}
#overlay img{position:absolute;inset:0;width:100%;height:100%;border:0}
#overlay img[data-layer=film]{position:static;display:block;height:auto}
.toggles{display:flex;gap:1.2em;margin:.5em 0}.toggles label{flex-direction:row;align-items:center}
.toggles label:has(:disabled){color:#888}
"""
_PAGE_SCRIPT = (Path(__file__).with_name("page.js")).read_text()  # the batch reader (no CDN, nothing fetched)


def _form_page(model: str) -> str:
    boxes = "".join(f"<label style='flex-direction:row'><input type='checkbox' name='tasks' value='{t}' checked>"
                    f"{t}</label>" for t in TASKS)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>cxrvlm</title>"
            f"<style>{_PAGE_STYLE}</style></head><body><h1>cxrvlm: read a chest X-ray</h1>"
            f"<p class='notice'>{escape(NOTICE)}</p><p><small>model {escape(model)}; the image stays on this "
            "machine</small></p>"
            "<form method='post' action='/interpret?format=html' enctype='multipart/form-data' target='reading'>"
            "<label>X-ray(s) (PNG, JPEG, TIFF, DICOM; several for a batch)"
            "<input type='file' name='file' multiple required></label>"
            "<label>prior X-ray (optional)<input type='file' name='prior'></label>"
            "<label>days since the prior<input type='number' name='prior_days' min='0' step='1'></label>"
            f"<fieldset><legend>tasks</legend>{boxes}</fieldset>"
            "<label>question (optional)<input type='text' name='question' size='40' "
            "placeholder='Is there evidence of tuberculosis in this X-ray?'></label>"
            "<button type='submit'>Read</button></form>"
            "<div id='drop' tabindex='0'>or drop films here</div>"
            "<table id='batch'><thead><tr><th>film</th><th>status</th><th>TB probability</th></tr></thead>"
            "<tbody></tbody></table><button type='button' id='csv'>download the batch (CSV)</button> "
            "<span id='csv-status' class='error' role='status'></span>"
            "<div id='detail' aria-live='polite'></div>"
            f"<iframe name='reading' title='the reading'></iframe><script>{_PAGE_SCRIPT}</script></body></html>\n")


def _error_page(message: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>cxrvlm: error</title></head>"
            f"<body style='font-family:system-ui,sans-serif'><h2>The image could not be read</h2>"
            f"<p>{escape(message)}</p></body></html>\n")
