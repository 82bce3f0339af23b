"""Model construction from the `model` and `task` configs."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from lra.errors import LRAError
from lra.models.classifier import Classifier
from lra.models.compiled import compile_blocks
from lra.models.encoder import Encoder
from lra.models.init import initialise

# Keys every model config shares (conf/model/_base.yaml); any other key of a model config is an option of its mixer.
BASE_KEYS = (
    "name", "mixer", "attention_layers", "n_layers", "d_model", "n_heads", "d_ff",
    "dropout", "attn_dropout", "norm", "norm_type", "pool", "pos", "zero_pad", "impl", "qkv_dim",
    "zero_is_pad", "init", "head", "compile",
)


def layer_mixers(mixer: str, n_layers: int, attention_layers: list[int]) -> list[str]:
    """Per-layer mixer names: `mixer` everywhere but exact attention at `attention_layers` (negative = from the end)."""
    layers = [mixer] * n_layers
    for index in attention_layers:
        if not -n_layers <= index < n_layers:
            raise LRAError(
                f"model.attention_layers has {index}, outside a {n_layers}-layer model; use indices in "
                f"[{-n_layers}, {n_layers - 1}] (e.g. model.attention_layers=[-1])"
            )
        layers[index] = "attention"
    return layers


def build_model(model: Mapping, task: Mapping, mask_token: bool = False) -> Classifier:
    """Build the classifier for `task` (vocab, max_len, classes, dual) from a model config.

    `mask_token`: one more embedding row, id `task.vocab_size`, for the [MASK] token of self-pretraining
    (lra.run.pretrain); both stages build it, so the pretrained encoder loads into the fine-tuned one as it is."""
    cfg = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else dict(model)
    options = {k: v for k, v in cfg.items() if k not in BASE_KEYS}
    encoder = Encoder(
        layers=layer_mixers(cfg["mixer"], cfg["n_layers"], list(cfg.get("attention_layers") or [])),
        vocab_size=task["vocab_size"] + int(mask_token),
        max_len=task["max_len"],
        d_model=cfg["d_model"],
        n_heads=cfg["n_heads"],
        d_ff=cfg["d_ff"],
        dropout=cfg["dropout"],
        attn_dropout=cfg["attn_dropout"],
        norm=cfg["norm"],
        norm_type=cfg["norm_type"],
        pool=cfg["pool"],
        pos=cfg["pos"],
        zero_pad=cfg["zero_pad"],
        mixer_options={cfg["mixer"]: options},
        impl=cfg["impl"],
        qkv_dim=cfg["qkv_dim"],
        zero_is_pad=cfg["zero_is_pad"],
    )
    classifier = Classifier(
        encoder, cfg["d_model"], cfg["d_ff"], task["n_classes"], bool(task.get("dual", False)),
        task.get("interaction", "paper"), cfg["head"],
    )
    classifier = initialise(classifier, cfg["init"])
    if not isinstance(cfg.get("compile", False), bool):
        raise LRAError(f"model.compile={cfg['compile']!r} must be true or false")
    if cfg.get("compile", False):
        compile_blocks(encoder)
    return classifier


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["BASE_KEYS", "Classifier", "Encoder", "build_model", "count_parameters", "layer_mixers"]
