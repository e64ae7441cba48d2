"""What the backends built on `transformers` share: its guarded import and a config's architecture as a dict."""
from __future__ import annotations

from typing import Any

# transformers' config keys that describe a download, not the architecture
_NOT_ARCHITECTURE = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")


def require_transformers(what: str) -> Any:
    """transformers, or an ImportError saying which feature (`what`) needs it and how to install it."""
    try:
        import transformers
    except ImportError:
        raise ImportError(f"{what} needs transformers: pip install 'cxrvlm[hf]'") from None
    return transformers


def architecture(config: Any) -> dict[str, Any]:
    """A transformers config as a JSON-able dict of its architecture (without the keys that describe a download)."""
    return {k: v for k, v in config.to_dict().items() if k not in _NOT_ARCHITECTURE}
