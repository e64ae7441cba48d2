"""The interpreter behind an HTTP API and a web page (FastAPI): one model loaded once, offline.

    app = create_app(cxrvlm.load("cxrvlm-tiny"))      # `cxrvlm serve` runs it with uvicorn

- `GET /`: the web page. A plain HTML form (no script, font or stylesheet from elsewhere) posts the X-ray to
  `/interpret?format=html`, and the reading page (`cxrvlm.infer.html`, the one `cxrvlm interpret --out` writes)
  shows in the frame beside it.
- `POST /interpret` (multipart): `file` (PNG/JPEG/TIFF/DICOM), optional `prior` and `prior_days`, `tasks` (comma-
  separated or repeated; default all), `question` (repeatable), `overlay=true` to add the overlay PNG as base64.
  Returns the reading JSON of `cxrvlm interpret` (`format=html`: the reading page). An unreadable upload is a 400
  with {"image": name, "error": reason}; a file over the size limit a 413.
- `GET /health`: the model, its tasks and the notice; `GET /openapi.json`: the API's schema.

Readings run one at a time (a lock): the model is CPU-bound, and two readings at once would only share the cores.
"""
# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations, whose types come from the
# guarded fastapi module inside create_app (FastAPI is optional), so they must be evaluated where they are defined.
import base64
import importlib
import io
import logging
import tempfile
import threading
from html import escape
from pathlib import Path
from types import ModuleType
from typing import Any

from cxrvlm.about import NOTICE
from cxrvlm.infer.html import render_html
from cxrvlm.infer.interpreter import parse_tasks
from cxrvlm.infer.overlay import render_overlay
from cxrvlm.infer.result import TASKS

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 64  # a large uncompressed DICOM is tens of MB
_CHUNK = 1 << 20


class UploadError(ValueError):
    """A request the server refuses; `status` is its HTTP status, the message names the file and the reason."""

    def __init__(self, message: str, status: int = 400, image: str = "") -> None:
        super().__init__(message)
        self.status, self.image = status, image


def require_serve(module: str = "fastapi") -> ModuleType:
    """`module` of the optional `serve` extra (fastapi or one of its submodules, uvicorn), imported on first use so
    the core install runs without it; python-multipart is checked with it (FastAPI's form parsing needs it). An
    ImportError naming the extra otherwise."""
    try:
        importlib.import_module("multipart")
        return importlib.import_module(module)
    except ImportError:
        raise ImportError("the server needs FastAPI, uvicorn and python-multipart: pip install 'cxrvlm[serve]'") \
            from None


def _safe_name(name: str | None) -> str:
    """The upload's base name, without any folder part a client may send."""
    base = Path((name or "").replace("\\", "/")).name
    return base if base not in ("", ".", "..") else "upload"


def _save_upload(upload: Any, folder: Path, max_bytes: int) -> Path:
    """Stream an UploadFile into `folder` under its own base name (so the reading names it), at most max_bytes."""
    name = _safe_name(upload.filename)
    path = folder / name
    size = 0
    with open(path, "wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise UploadError(f"{name}: larger than the server's limit of {max_bytes / (1 << 20):g} MB", 413, name)
            out.write(chunk)
    if size == 0:
        raise UploadError(f"{name}: the file is empty", 400, name)
    return path


def _tasks(values: list[str]) -> list[str]:
    """The `tasks` form fields (repeated, or comma-separated) -> task names; none given: every task."""
    return parse_tasks(",".join(values) if any(v.strip() for v in values) else list(TASKS))


def _read_upload(interpreter: Any, lock: threading.Lock, max_bytes: int, file: Any, prior: Any,
                 prior_days: float | None, tasks: list[str], question: list[str]) -> tuple[dict[str, Any], Any]:
    """One request's reading and the frontal pixels: the uploads saved to a temporary folder, read one request at
    a time. The client's input errors are 400s, a model failure a 500 naming the file; the server goes on."""
    name = _safe_name(file.filename)
    with tempfile.TemporaryDirectory(prefix="cxrvlm-serve-") as tmp:
        try:
            wanted = _tasks(tasks)
            image = _save_upload(file, Path(tmp), max_bytes)
            prior_path = None
            if prior is not None and prior.filename:
                (Path(tmp) / "prior").mkdir()
                prior_path = _save_upload(prior, Path(tmp) / "prior", max_bytes)
            questions = [q.strip() for q in question if q.strip()] or None
            with lock:
                reading, pixels = interpreter.interpret_with_pixels(
                    str(image), tasks=wanted, questions=questions,
                    prior=str(prior_path) if prior_path else None, prior_days=prior_days)
            reading["image"] = name  # the client's file name, not the server's temporary path
            if prior_path is not None:
                reading["prior"] = prior_path.name
        except UploadError:
            raise
        except (ValueError, OSError) as e:  # unreadable image, bad task list, bad interval: the client's input
            raise UploadError(str(e).replace(tmp + "/", ""), 400, name) from None
        except Exception as e:  # noqa: BLE001 - the model failed on this image: say so, keep serving
            log.exception("interpretation of %s failed", name)
            raise UploadError(f"{name}: the interpretation failed ({type(e).__name__}: {e})", 500, name) from None
    return reading, pixels


def create_app(interpreter: Any, max_upload_mb: float = MAX_UPLOAD_MB) -> Any:
    """A FastAPI app serving `interpreter` (a `cxrvlm.infer.Interpreter`)."""
    fastapi, responses = require_serve(), require_serve("fastapi.responses")
    File, Form, Query, Request, UploadFile = fastapi.File, fastapi.Form, fastapi.Query, fastapi.Request, \
        fastapi.UploadFile
    HTMLResponse, JSONResponse = responses.HTMLResponse, responses.JSONResponse

    # no /docs or /redoc: FastAPI's pages fetch their scripts from a CDN, which an offline clinic cannot reach;
    # the schema stays at /openapi.json
    app = fastapi.FastAPI(title="cxrvlm", description=f"Chest X-ray interpretation. {NOTICE}", docs_url=None,
                          redoc_url=None)
    app.state.interpreter = interpreter
    lock = threading.Lock()
    max_bytes = int(max_upload_mb * (1 << 20))

    @app.exception_handler(UploadError)
    async def _refused(request: Request, exc: UploadError) -> Any:
        if request.query_params.get("format") == "html":
            return HTMLResponse(_error_page(str(exc)), status_code=exc.status)
        return JSONResponse({"image": exc.image, "error": str(exc)}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _form_page(interpreter.name)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": interpreter.name, "tasks": list(TASKS),
                "tb_threshold": interpreter.threshold, "notice": NOTICE}

    # sync endpoint: FastAPI runs it in a worker thread, so the event loop stays free while the model reads
    @app.post("/interpret")
    def interpret(file: UploadFile = File(..., description="the X-ray: PNG, JPEG, TIFF or DICOM"),
                  prior: UploadFile | None = File(None, description="an earlier X-ray of the same patient"),
                  prior_days: float | None = Form(None), tasks: list[str] = Form([]),
                  question: list[str] = Form([]), overlay: bool = Form(False),
                  format: str = Query("json", pattern="^(json|html)$")) -> Any:
        reading, pixels = _read_upload(interpreter, lock, max_bytes, file, prior, prior_days, tasks, question)
        if format == "html":
            return HTMLResponse(render_html(reading, render_overlay(pixels, reading)))
        if overlay:
            buf = io.BytesIO()
            render_overlay(pixels, reading).save(buf, format="PNG", optimize=True)
            reading["overlay_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        return reading

    return app


_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1250px;color:#222;padding:0 1em}
.notice{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em;font-weight:600}
form{display:flex;flex-wrap:wrap;gap:.8em 1.6em;align-items:flex-end;margin:1em 0}
label{display:flex;flex-direction:column;gap:.25em;font-size:.9em}fieldset{border:1px solid #ccc}
iframe{width:100%;height:80vh;border:1px solid #ccc}button{font-size:1em;padding:.4em 1.2em}
"""


def _form_page(model: str) -> str:
    boxes = "".join(f"<label style='flex-direction:row'><input type='checkbox' name='tasks' value='{t}' checked>"
                    f"{t}</label>" for t in TASKS)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>cxrvlm</title>"
            f"<style>{_PAGE_STYLE}</style></head><body><h1>cxrvlm: read a chest X-ray</h1>"
            f"<p class='notice'>{escape(NOTICE)}</p><p><small>model {escape(model)}; the image stays on this "
            "machine</small></p>"
            "<form method='post' action='/interpret?format=html' enctype='multipart/form-data' target='reading'>"
            "<label>X-ray (PNG, JPEG, TIFF, DICOM)<input type='file' name='file' required></label>"
            "<label>prior X-ray (optional)<input type='file' name='prior'></label>"
            "<label>days since the prior<input type='number' name='prior_days' min='0' step='1'></label>"
            f"<fieldset><legend>tasks</legend>{boxes}</fieldset>"
            "<label>question (optional)<input type='text' name='question' size='40' "
            "placeholder='Is there evidence of tuberculosis in this X-ray?'></label>"
            "<button type='submit'>Read</button></form>"
            "<iframe name='reading' title='the reading'></iframe></body></html>\n")


def _error_page(message: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>cxrvlm: error</title></head>"
            f"<body style='font-family:system-ui,sans-serif'><h2>The image could not be read</h2>"
            f"<p>{escape(message)}</p></body></html>\n")
