"""A bounded load test of `cxrvlm serve` on loopback: N concurrent clients x M requests, a share of them bad uploads.

    python scripts/load.py                                  # starts `cxrvlm serve` on a free loopback port
    python scripts/load.py --clients 8 --requests 50 --bad-share 0.2 --tasks classify,detect --max-seconds 600
    python scripts/load.py --url http://127.0.0.1:8000     # a server already running (no RSS unless --pid)

Good requests send the project's phantom chest PNG (plain, with a prior and its interval, or under a 300-character
name); bad ones are garbage bytes named .png, an empty file, a body over the server's limit, a PNG declaring 400 M
pixels, a truncated PNG, a 5-byte JPEG, a garbage prior, prior_days=-5, a 2,000-character question, an unknown task.
A 503 with Retry-After (the server's queue is full: legitimate backpressure) is waited out and the request sent
again, counted apart; the started server's queue bound (4) is below the 8 clients so that the run meets it.

It prints p50/p95 latency (good and bad apart), the responses by status, whether every bad input got a 4xx with a
reason, the 5xx count, and the server's RSS over the run (VmRSS every 0.5 s: first- vs last-quarter median, peak).
Exit status: 0 when no response was a 5xx, every bad input got a 4xx with a reason and every good one a 200; 1
otherwise; 2 when the time limit stopped the run first. Needs only the standard library and httpx.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PHANTOM = Path(__file__).resolve().parents[1] / "src" / "cxrvlm" / "assets" / "phantom_chest.png"


@dataclass
class Result:
    kind: str
    bad: bool
    status: int  # 0: no response (a connection error)
    seconds: float
    reason: str
    retries: int = 0


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    unsent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


# ------------------------------------------------------------------------------------------------------- inputs
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pixel_bomb_png(side: int = 20000) -> bytes:
    """A small PNG whose header declares side x side 8-bit gray pixels (its data is one compressed row)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * (side + 1)))
            + _png_chunk(b"IEND", b""))


def requests_by_kind(image: bytes, max_upload_bytes: int, tasks: str) -> dict[str, tuple[bool, dict, dict]]:
    """kind -> (bad, files, form fields) of each request the clients send."""
    form = {"tasks": tasks}
    good = {"file": ("chest.png", image)}
    return {
        "good": (False, good, form),
        "good-with-prior": (False, {**good, "prior": ("earlier.png", image)}, {**form, "prior_days": "30"}),
        "good-long-name": (False, {"file": ("prior" + "x" * 291 + ".png", image)}, form),
        "garbage": (True, {"file": ("garbage.png", random.Random(0).randbytes(4096))}, form),
        "empty": (True, {"file": ("empty.png", b"")}, form),
        "too-large": (True, {"file": ("huge.dcm", b"\0" * (max_upload_bytes + (1 << 20)))}, form),
        "pixel-bomb": (True, {"file": ("bomb.png", pixel_bomb_png())}, form),
        "truncated-png": (True, {"file": ("cut.png", image[: len(image) // 2])}, form),
        "five-byte-jpeg": (True, {"file": ("tiny.jpg", b"\xff\xd8\xff\xe0\x00")}, form),
        "garbage-prior": (True, {**good, "prior": ("earlier.png", b"not an image at all")}, form),
        "negative-interval": (True, {**good, "prior": ("earlier.png", image)}, {**form, "prior_days": "-5"}),
        "long-question": (True, good, {"tasks": "vqa", "question": "Is there " + "a" * 1991 + "?"}),
        "unknown-task": (True, good, {"tasks": "classify,xray-magic"}),
    }


def plan(n: int, bad_share: float, kinds: dict, rng: random.Random) -> list[str]:
    """n request kinds: round(n * bad_share) bad ones cycling through the bad kinds, the rest good, shuffled."""
    bad = [k for k, (is_bad, _, _) in kinds.items() if is_bad]
    good = [k for k, (is_bad, _, _) in kinds.items() if not is_bad]
    n_bad = round(n * bad_share)
    chosen = [bad[i % len(bad)] for i in range(n_bad)] + [good[i % len(good)] for i in range(n - n_bad)]
    rng.shuffle(chosen)
    return chosen


# ------------------------------------------------------------------------------------------------------ clients
def _reason(response: httpx.Response) -> str:
    """The refusal's reason: our {"error": ...} or FastAPI's {"detail": ...}; "" when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error") or body.get("detail") or "") if isinstance(body, dict) else ""


def send(client: httpx.Client, url: str, kind: str, spec: tuple, deadline: float) -> Result:
    """One request, sent again after each 503 with Retry-After while the time limit allows (closed-loop clients
    above the queue bound: the ones waiting out a 503 can lose the race for a while; they are not given up on)."""
    bad, files, data = spec
    retries = 0
    while True:
        start = time.monotonic()
        try:
            response = client.post(url + "/interpret", files=files, data=data,
                                   timeout=max(1.0, deadline - start))
        except httpx.HTTPError as e:
            return Result(kind, bad, 0, time.monotonic() - start, f"{type(e).__name__}: {e}", retries)
        seconds = time.monotonic() - start
        wait = float(response.headers.get("Retry-After", "0") or 0)
        if response.status_code == 503 and wait > 0 and time.monotonic() + wait < deadline:
            retries += 1
            time.sleep(wait)
            continue
        reason = _reason(response) if response.status_code != 200 else ""
        return Result(kind, bad, response.status_code, seconds, reason, retries)


def client_loop(url: str, kinds: dict, order: list[str], deadline: float, run: Run) -> None:
    with httpx.Client() as client:
        for i, kind in enumerate(order):
            if time.monotonic() >= deadline:
                with run.lock:
                    run.unsent += len(order) - i
                return
            result = send(client, url, kind, kinds[kind], deadline)
            with run.lock:
                run.results.append(result)


def sample_rss(pid: int, stop: threading.Event, run: Run, every: float = 0.5) -> None:
    """The server's VmRSS (kB) every `every` s until `stop`."""
    status = Path(f"/proc/{pid}/status")
    while not stop.is_set():
        try:
            line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
            run.rss_kb.append(int(line.split()[1]))
        except (OSError, StopIteration):
            return
        stop.wait(every)


# ------------------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """`cxrvlm serve` on a free loopback port, with this Python; its log goes to this script's stderr."""
    port = free_port()
    command = [sys.executable, "-c", "import sys; from cxrvlm.cli import main; sys.exit(main(sys.argv[1:]))",
               "serve", "--model", args.model, "--host", "127.0.0.1", "--port", str(port),
               "--max-upload-mb", str(args.max_upload_mb), "--max-queue", str(args.max_queue),
               "--threads", str(args.threads)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=None)
    return server, f"http://127.0.0.1:{port}"


def wait_healthy(url: str, server: subprocess.Popen | None, seconds: float = 120.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode} (its log is above)")
        try:
            return httpx.get(url + "/health", timeout=2.0).json()
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"no answer from {url}/health within {seconds:g} s")


# ------------------------------------------------------------------------------------------------------ summary
def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(run: Run, elapsed: float, every: float) -> tuple[list[str], bool]:
    """The printed lines and whether the run passed."""
    results = run.results
    good, bad = [r for r in results if not r.bad], [r for r in results if r.bad]
    five = [r for r in results if r.status >= 500]
    bad_ok = [r for r in bad if 400 <= r.status < 500 and r.reason]
    good_ok = [r for r in good if r.status == 200]
    sent = (f"requests: {len(results)} answered ({len(good)} good, {len(bad)} bad) in {elapsed:.1f} s"
            + (f"; {run.unsent} not sent (time limit)" if run.unsent else ""))
    statuses = sorted(Counter(r.status for r in results).items())
    lines = [sent, f"latency good: {_latency(good)}; bad: {_latency(bad)}",
             "responses by status: " + ", ".join(f"{s or 'no response'}: {n}" for s, n in statuses),
             (f"503 busy (queue full), waited out and sent again: {sum(r.retries for r in results)} times over "
              f"{sum(1 for r in results if r.retries)} requests (not counted below: their final answers are)"),
             f"bad inputs answered 4xx with a reason: {len(bad_ok)}/{len(bad)}",
             f"good inputs answered 200: {len(good_ok)}/{len(good)}",
             f"5xx responses (final): {len(five)}"]
    lines += _by_kind(results)
    lines += [f"  not as expected: {r.kind} -> {r.status} {r.reason[:160]}" for r in results
              if (r.bad and r not in bad_ok) or (not r.bad and r.status != 200)][:10]
    lines.append(_rss_line(run.rss_kb, every))
    return lines, not five and len(bad_ok) == len(bad) and len(good_ok) == len(good)


def _latency(results: list[Result]) -> str:
    seconds = [r.seconds for r in results]
    return f"p50 {pct(seconds, .5):.3f} s, p95 {pct(seconds, .95):.3f} s"


def _by_kind(results: list[Result]) -> list[str]:
    lines = ["by kind (status: count; a reason, for the bad):"]
    for kind in sorted({r.kind for r in results}):
        mine = [r for r in results if r.kind == kind]
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(Counter(r.status for r in mine).items()))
        reason = next((r.reason for r in mine if r.reason), "")
        lines.append(f"  {kind:<18} {counts:<16} {reason[:110]}")
    return lines


def _rss_line(rss_kb: list[int], every: float) -> str:
    if len(rss_kb) < 4:
        return "server RSS: not sampled (no server pid)"
    quarter = len(rss_kb) // 4
    first, last = statistics.median(rss_kb[:quarter]) / 1024, statistics.median(rss_kb[-quarter:]) / 1024
    return (f"server RSS: {len(rss_kb)} samples every {every:g} s; median first quarter {first:.0f} MB, last quarter "
            f"{last:.0f} MB ({(last - first) / first:+.1%}); peak {max(rss_kb) / 1024:.0f} MB")


# --------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server (default: start `cxrvlm serve` on a free loopback port)")
    p.add_argument("--pid", type=int, help="with --url: the server's process id, for its RSS")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=50, help="per client")
    p.add_argument("--bad-share", type=float, default=0.2)
    p.add_argument("--tasks", default="classify,detect", help="tasks of the good requests (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="hard time limit of the load phase")
    p.add_argument("--warmup", type=int, default=3, help="good requests before the clock and the RSS start")
    p.add_argument("--image", type=Path, default=PHANTOM, help="the good X-ray (default: the phantom chest PNG)")
    p.add_argument("--model", default="cxrvlm-tiny", help="the started server's model")
    p.add_argument("--max-upload-mb", type=float, default=4.0, help="the started server's body limit")
    p.add_argument("--max-queue", type=int, default=4,
                   help="the started server's queue bound (default: %(default)s: below the clients, so it is met)")
    p.add_argument("--threads", type=int, default=0, help="the started server's torch threads (0: its default)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load(args: argparse.Namespace, url: str, pid: int | None) -> tuple[list[str], bool, bool]:
    health = wait_healthy(url, None)
    limit = int(health.get("limits", {}).get("max_upload_mb", args.max_upload_mb) * (1 << 20))
    kinds = requests_by_kind(args.image.read_bytes(), limit, args.tasks)
    with httpx.Client() as client:
        for _ in range(args.warmup):
            send(client, url, "good", kinds["good"], time.monotonic() + 120)
    rng = random.Random(args.seed)
    orders = [plan(args.requests, args.bad_share, kinds, rng) for _ in range(args.clients)]
    run, stop, every = Run(), threading.Event(), 0.5
    sampler = threading.Thread(target=sample_rss, args=(pid, stop, run, every), daemon=True) if pid else None
    if sampler:
        sampler.start()
    start = time.monotonic()
    deadline = start + args.max_seconds
    threads = [threading.Thread(target=client_loop, args=(url, kinds, order, deadline, run)) for order in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    lines, ok = summarize(run, time.monotonic() - start, every)
    header = [(f"load: {args.clients} clients x {args.requests} requests, {args.bad_share:.0%} bad, good tasks "
               f"{args.tasks}, against {url} (model {health.get('model')}, limits {json.dumps(health.get('limits'))})")]
    return header + lines, ok, run.unsent == 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = None
    if args.url:
        url, pid = args.url.rstrip("/"), args.pid
    else:
        server, url = start_server(args)
        pid = server.pid
    try:
        wait_healthy(url, server)
        lines, ok, complete = load(args, url, pid)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    print("\n".join(lines))
    if not complete:
        print("INCOMPLETE: the time limit stopped the run")
        return 2
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
