"""The project's version and the notice every medical output carries (a leaf module: anything may import it)."""
from __future__ import annotations

VERSION = "0.1.0"
NOTICE = "Research use only. Not a diagnosis."
