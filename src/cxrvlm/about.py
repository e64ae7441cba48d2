"""The project's version, the built-in model a reading uses by default and the notice every medical output carries
(a leaf module: anything may import it)."""
from __future__ import annotations

VERSION = "0.1.0"
NOTICE = "Research use only. Not a diagnosis."
DEFAULT_MODEL = "cxrvlm-tiny"  # the built-in model `cxrvlm interpret`, `cxrvlm serve` and `cxrvlm.load()` read with
