"""Models: tokenizer, the native compact VLM (encoders, fusion, projectors, prefix-LM GPT decoder), registry,
checkpoints. The interface every backend keeps (the trainer, the inference engine and the server use only this):

    from cxrvlm.models import create_model, list_models, load_model, Tokenizer

    tok = Tokenizer.train(texts, vocab_size=4000)      # byte-level BPE + <loc0000..1023> + <seg000..127> + specials
    model = create_model("cxrvlm-tiny", tokenizer=tok, **overrides)
    #   unknown name -> ValueError listing list_models(); unknown override key -> ValueError listing the keys
    model.config                                        # dataclass; .to_json() / VLMConfig.from_json() round-trip
    model.tokenizer                                     # the Tokenizer above

    batch = model.collate(examples, images)             # examples: Example (.prefix, .suffix); images: per example
    #   its views, float32 (H, W) in [0, 1] (as cxrvlm.io reads them), any size (resized here, aspect not kept)
    #   -> pixel_values (B, M, 1, S, S), image_mask (B, M), input_ids (B, T), attention_mask (B, T),
    #      labels (B, T) (-100 on prompt and padding: loss on the answer only), prefix_lengths (B,)
    logits, loss = model(**batch)                       # logits (B, T, V); loss = mean NLL over answer tokens
    logits, per_example = model(**batch, reduction="none")   # (B,) mean answer NLL per example (per-task logging)

    texts = model.generate(images, prefixes, max_new_tokens=64)   # greedy, KV-cached, batched; special tokens
    texts, token_scores = model.generate(..., return_scores=True) #   stripped, <loc>/<seg> kept; token_scores[i] =
    box_scores(token_scores[i])                                   #   [(token, prob)]; one score per generated box
    probs = model.score_candidates(views, prefix, candidates)     # list[float] summing to 1 (answer likelihoods)
    feats = model.encode_images(views)                  # encode once, then generate(image_features=feats, prefixes=
    model.score_candidates(image_features=feats, prefix=..., candidates=...)   # [...]) for every task
    model.save_pretrained(folder)                       # config.json + model.safetensors + tokenizer.json, atomic
    load_model(folder_or_name)

`images` arguments: one array or a list of arrays is ONE example's views (broadcast over all prompts); a list of
lists gives each example its own views. View order = slot order: the study's views, then the prior's.
"""
from cxrvlm.models.backend import ImageFeatures, box_scores
from cxrvlm.models.config import VLMConfig
from cxrvlm.models.registry import create_model, list_models, load_model, read_model_config
from cxrvlm.models.tokenizer import Tokenizer, TokenizerError, read_texts
from cxrvlm.models.vlm import CompactVLM

__all__ = [
    "CompactVLM",
    "ImageFeatures",
    "Tokenizer",
    "TokenizerError",
    "VLMConfig",
    "box_scores",
    "create_model",
    "list_models",
    "load_model",
    "read_model_config",
    "read_texts",
]
