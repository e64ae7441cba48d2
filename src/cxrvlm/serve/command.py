"""`cxrvlm serve [--model NAME|PATH] [--host 127.0.0.1] [--port 8000]`: the web page and the HTTP API
(`cxrvlm.serve.app`) with uvicorn. It listens on this machine only unless --host says otherwise.

    curl -F file=@chest.dcm -F tasks=classify,detect http://127.0.0.1:8000/interpret
"""
from __future__ import annotations

import argparse
import sys

import torch

from cxrvlm.infer.interpreter import load
from cxrvlm.serve.app import MAX_UPLOAD_MB, create_app, require_serve


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="cxrvlm-tiny", help="model name or checkpoint folder (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s; 0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--threshold", type=float, help="TB operating point (default: the model's, else 0.5)")
    parser.add_argument("--no-mask-refiner", action="store_true",
                        help="give the masks as the model's tokens decode them, not redrawn on the film")
    parser.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB,
                        help="largest accepted file (default: %(default)s MB)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def run(args: argparse.Namespace) -> int:
    require_serve()  # a missing extra is a clear error before the model is loaded
    uvicorn = require_serve("uvicorn")
    if args.max_upload_mb <= 0:
        raise ValueError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if args.threads:
        torch.set_num_threads(args.threads)
    interp = load(args.model, threshold=args.threshold, refine_masks=not args.no_mask_refiner)
    app = create_app(interp, max_upload_mb=args.max_upload_mb)
    print(f"cxrvlm: serving {args.model} on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
