"""`cxrvlm serve [--model NAME|PATH] [--host 127.0.0.1] [--port 8000] [limits]`: the web page and the HTTP API
(`cxrvlm.serve.app`) with uvicorn. It listens on this machine only unless --host says otherwise.

    curl -F file=@chest.dcm -F tasks=classify,detect http://127.0.0.1:8000/interpret
"""
from __future__ import annotations

import argparse
import sys

import torch

from cxrvlm.about import DEFAULT_MODEL
from cxrvlm.infer.interpreter import load
from cxrvlm.serve.app import create_app, require_serve
from cxrvlm.serve.limits import Limits

# connections uvicorn serves at once besides the reading and its queue (uploads being received, /health, the page);
# beyond that it answers 503 itself, so uploads in flight cannot fill the disk
SPARE_CONNECTIONS = 8

LIMITS_HELP = f"""limits (a refused request gets its HTTP status and the reason):
  --max-upload-mb    the request body (X-ray, prior and form together): 413 while it streams,
                     at once when its Content-Length is over
  --max-pixels       an image declaring more: 400, before it is decoded
  --max-question-chars, --max-questions: 422; so is a negative or infinite prior_days
  --max-queue        readings run one at a time; with this many already waiting, one more
                     gets 503 with Retry-After at once
  --timeout          a request that waited this long for its turn gets 503 with Retry-After;
                     a reading that has begun runs to its end (it cannot be cut short)
  connections        at most max-queue + {1 + SPARE_CONNECTIONS} at once; uvicorn answers 503 beyond that"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = LIMITS_HELP
    default = Limits()
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or checkpoint folder (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s; 0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--threshold", type=float, help="TB operating point (default: the model's, else 0.5)")
    parser.add_argument("--no-mask-refiner", action="store_true",
                        help="give the masks as the model's tokens decode them, not redrawn on the film")
    parser.add_argument("--no-view-gate", action="store_true",
                        help="read every image the content rules let through, even one the view gate refuses")
    parser.add_argument("--max-upload-mb", type=float, default=default.max_upload_mb,
                        help="largest request body: the X-ray, its prior and the form (default: %(default)s MB)")
    parser.add_argument("--max-pixels", type=int, default=default.max_pixels,
                        help="most pixels an image may declare (default, and the most: %(default)s)")
    parser.add_argument("--max-question-chars", type=int, default=default.max_question_chars,
                        help="longest question (default: %(default)s characters)")
    parser.add_argument("--max-questions", type=int, default=default.max_questions,
                        help="most questions per request (default: %(default)s)")
    parser.add_argument("--max-queue", type=int, default=default.max_queue,
                        help="most requests waiting for the model (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=default.timeout,
                        help="longest wait for the model, in seconds (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def limits_of(args: argparse.Namespace) -> Limits:
    """The command's limits; a bad value is a ValueError naming its option."""
    try:
        return Limits(args.max_upload_mb, args.max_pixels, args.max_question_chars, args.max_questions,
                      args.max_queue, args.timeout)
    except ValueError as e:
        field, reason = str(e).split(" ", 1)
        raise ValueError(f"--{field.replace('_', '-')} {reason}") from None


def run(args: argparse.Namespace) -> int:
    require_serve()  # a missing extra is a clear error before the model is loaded
    uvicorn = require_serve("uvicorn")
    limits = limits_of(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    interp = load(args.model, threshold=args.threshold, refine_masks=not args.no_mask_refiner,
                  **({"view_gate": None} if args.no_view_gate else {}))
    app = create_app(interp, limits)
    print(f"cxrvlm: serving {args.model} on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                limit_concurrency=limits.max_queue + 1 + SPARE_CONNECTIONS)
    return 0
