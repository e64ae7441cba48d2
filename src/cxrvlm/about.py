"""The project's version, the built-in model a reading uses by default and the notice every medical output carries
(a leaf module: anything may import it)."""
from __future__ import annotations

VERSION = "0.1.0"
NOTICE = "Research use only. Not a diagnosis."
# the built-in model `cxrvlm interpret`, `cxrvlm serve` and `cxrvlm.load()` read with: the ImageNet EfficientNet-Lite0
# encoder with the label head over every source (`cxrvlm-tiny`, from scratch on the TB sets, stays as `--model`)
DEFAULT_MODEL = "cxrvlm-effnet"
