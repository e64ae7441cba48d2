"""The mask refiner's training (cxrvlm train-mask-refiner): a run that resumes and writes loadable weights, on a
curated folder written in the test, and the second-pass samples fed the refiner's own answer."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cxrvlm.tokens.seg_refine import MaskRefiner
from cxrvlm.train import mask_refiner as train

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parents[1] / "tokens"))
from curated_fixtures import write_curated  # noqa: E402
from seg_shapes import film_and_lung, iou  # noqa: E402


def test_training_runs_resumes_and_writes_loadable_weights(tmp_path: Path) -> None:
    data = write_curated(tmp_path / "curated")
    out = tmp_path / "run"
    parser = argparse.ArgumentParser()
    train.configure(parser)
    args = parser.parse_args(["--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2",
                              "--ckpt-every", "1", "--threads", "1", "--second-pass", "0.5"])
    assert train.run(args) == 0
    first = MaskRefiner.from_file(out / "mask_refiner.safetensors")
    args.steps = 3
    assert train.run(args) == 0  # resumes at step 2: one more step
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [2, 3]
    result = json.loads((out / "eval.json").read_text())
    assert result["steps"] == 3 and result["val"]["n"] > 0
    assert 0.0 <= result["val"]["iou_refined"] <= 1.0
    second = MaskRefiner.from_file(out / "mask_refiner.safetensors")
    assert any(not torch.equal(a, b) for a, b in zip(first.net.state_dict().values(),
                                                     second.net.state_dict().values()))


def test_second_pass_training_feeds_the_refiners_own_answer_back() -> None:
    film, lung = film_and_lung()
    rng = np.random.default_rng(0)
    x, t, cases = train.batch([(film, lung)] * 2, [0, 1], rng, 0.1, False)
    before = x.clone()

    class Truth(torch.nn.Module):  # answers with the true lung over whatever grown box it is given
        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return (t[: len(inp)] * 2 - 1) * 10.0

    train.own_outputs(Truth(), x, t, cases, np.array([True, False]))
    assert torch.equal(x[1], before[1])  # not picked: unchanged
    assert not torch.equal(x[0, 1], before[0, 1])
    fed, want = (x[0, 1] > 0).numpy(), (t[0] > 0.5).numpy()  # the true mask fed back, in its tight box's crop
    assert iou(fed, want) > 0.97
