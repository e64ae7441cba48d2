"""View gate: is this image a frontal chest radiograph the models can read?

A small CNN reads the whole image at SIZE x SIZE and tells five kinds apart (`KINDS`): a frontal chest radiograph,
a lateral chest radiograph, an image of another body part (head or abdomen films, CT, MRI), a graphic that is not a
radiograph (a lung mask, a blank or noise) and a frontal film with its grey levels inverted (white air: a
MONOCHROME1 film read the wrong way). The reading models were trained on frontal films only, so anything else gets
no verdict. Trained by `cxrvlm train-gate` (`train.view_gate`) on real negatives from ../shared/data; the weights ship
in the package (`WEIGHTS`) with the threshold and the held-out rates in their metadata.

    gate = ViewGate.default()                     # the shipped weights (cached)
    gate.probabilities(pixels)                    # float (H, W) in [0, 1] -> {kind: probability}
    gate.problems(pixels)                         # [] for a frontal film, else the reason
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cxrvlm.io import resize_to
from cxrvlm.tensorfile import read_tagged_tensors, write_tensors

SIZE = 128  # the gate's square input: enough to tell a view, cheap on a CPU (about 2 ms)
KINDS = ("frontal", "lateral", "other_body_part", "not_a_radiograph", "inverted")
FRONTAL = KINDS[0]
DEFAULT_THRESHOLD = 0.5  # a film passes when "frontal" is at least this probable (more likely than not)
WEIGHTS = Path(__file__).parent / "gate" / "view_gate.safetensors"
FORMAT = "cxrvlm-view-gate"
WIDTHS = (16, 32, 64, 128)
_REASON = {
    "lateral": "this looks like a lateral chest view; the model reads frontal (PA/AP) views",
    "other_body_part": "this does not look like a chest radiograph (another body part or modality)",
    "not_a_radiograph": "this does not look like a radiograph (a mask, a drawing, a blank or noise)",
    "inverted": "the grey levels look inverted (air white, bone dark): check the file's photometric interpretation",
}


class ViewGateNet(nn.Module):
    """(B, 1, SIZE, SIZE) in [0, 1] -> (B, len(KINDS)) logits: four stride-2 conv blocks, global mean, linear."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, len(KINDS))
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.25).mean(dim=(2, 3)))


def gate_input(pixels: np.ndarray) -> np.ndarray:
    """float (H, W) in [0, 1] -> float32 (SIZE, SIZE): the whole image squeezed to the square (as the models see it)."""
    return np.clip(resize_to(np.asarray(pixels, np.float32), (SIZE, SIZE)), 0.0, 1.0).astype(np.float32)


class ViewGate:
    """A trained `ViewGateNet` with its pass threshold; see the module docstring."""

    def __init__(self, net: ViewGateNet, threshold: float = DEFAULT_THRESHOLD, info: dict | None = None) -> None:
        self.net = net.eval()
        self.threshold = float(threshold)
        self.info = dict(info or {})  # what the weights file says about its training and held-out rates

    @classmethod
    @functools.lru_cache(maxsize=1)
    def default(cls) -> ViewGate:
        """The gate shipped in the package."""
        return cls.load(WEIGHTS)

    @classmethod
    def load(cls, path: str | Path) -> ViewGate:
        meta, tensors = read_tagged_tensors(path, FORMAT, "widths", "view gate")
        net = ViewGateNet(tuple(json.loads(meta["widths"])))
        try:
            net.load_state_dict(tensors)
        except RuntimeError as e:
            raise ValueError(f"{path}: the weights do not fit the view gate: {e}") from None
        return cls(net, float(meta.get("threshold", DEFAULT_THRESHOLD)), json.loads(meta.get("info", "{}")))

    def save(self, path: str | Path) -> Path:
        """Weights, widths, threshold and `info`, written atomically."""
        meta = {"format": FORMAT, "widths": json.dumps(list(self.net.widths)), "kinds": json.dumps(list(KINDS)),
                "threshold": str(self.threshold), "info": json.dumps(self.info)}
        return write_tensors(path, self.net.state_dict(), meta)  # it detaches and packs them

    @torch.no_grad()
    def probabilities_batch(self, inputs: np.ndarray) -> np.ndarray:
        """float32 (B, SIZE, SIZE) gate inputs -> (B, len(KINDS)) probabilities."""
        x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32))[:, None]
        return torch.softmax(self.net(x).float(), dim=1).numpy()

    def probabilities(self, pixels: np.ndarray) -> dict[str, float]:
        row = self.probabilities_batch(gate_input(pixels)[None])[0]
        return {k: round(float(p), 4) for k, p in zip(KINDS, row)}

    def passes(self, probs: dict[str, float]) -> bool:
        return probs[FRONTAL] >= self.threshold

    def view(self, probs: dict[str, float]) -> str:
        """The most likely kind."""
        return max(probs, key=probs.get)

    def problems(self, pixels: np.ndarray) -> list[str]:
        """[] when the image passes as a frontal chest radiograph, else one reason naming what it looks like."""
        return self.problems_of(self.probabilities(pixels))

    def problems_of(self, probs: dict[str, float]) -> list[str]:
        """`problems` from the gate's probabilities."""
        if self.passes(probs):
            return []
        kind = max((k for k in KINDS if k != FRONTAL), key=probs.get)
        return [f"{_REASON[kind]} (view gate: {kind} {probs[kind]:.2f}, frontal {probs[FRONTAL]:.2f})"]
