"""Full interpretation latency: every task on one image (TB, findings, report, detection, segmentation, a yes/no
question), as `cxrvlm interpret` runs it, median over repeats after one warm-up.

Two measurements: the random-weight native model against its random PaliGemma twin in the bench process (random
weights over a vocabulary of thousands all but never emit <eos>, so both run every generation to the interpreter's
token limits: the worst case, the same work for both),
and the built-in trained model in a fresh process (the hidden `cxrvlm bench-interpret`), whose peak RSS is that
of a real `cxrvlm interpret` run rather than of the bench process that also trained two models.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from cxrvlm.infer.interpreter import Interpreter

QUESTION = "Is there evidence of tuberculosis in this X-ray?"


def time_interpretation(models: dict[str, Any], image: np.ndarray | str, repeats: int) -> dict[str, float]:
    """Median milliseconds of one full interpretation per model, calls interleaved across models."""
    readers = {k: Interpreter(m, name=k) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(repeats + 1):
        for k, reader in readers.items():
            t0 = time.perf_counter()
            reading = reader.interpret(image, questions=[QUESTION])
            if i > 0:
                times[k].append((time.perf_counter() - t0) * 1000)
            if "error" in reading:
                raise ValueError(f"{k}: interpretation failed: {reading['error']}")
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux keeps ru_maxrss across exec (a child started by the bench would
    report the bench's own peak), so read the address space's high-water mark, VmHWM, where there is one."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def builtin_in_subprocess(model: str, repeats: int, threads: int) -> dict[str, Any]:
    """`cxrvlm bench-interpret` in a fresh Python: {"interpret_ms", "peak_rss_mb", "model", "threads"} of the named
    model (through the CLI module, the one entry point; `sys.executable` is this Python, whatever its PATH)."""
    cmd = [sys.executable, "-m", "cxrvlm.cli", "bench-interpret", "--model", model, "--repeats", str(repeats),
           "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise ValueError(f"interpretation benchmark of {model!r} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)
