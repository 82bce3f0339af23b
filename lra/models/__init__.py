"""Model construction from the `model` and `task` configs."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from lra.errors import LRAError
from lra.models.classifier import Classifier
from lra.models.compiled import compile_blocks
from lra.models.config import BASE_KEYS, ModelConfig, split_model
from lra.models.encoder import Encoder
from lra.models.init import initialise


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


def token_rows(base: ModelConfig, needed: int) -> int:
    """Rows of the token table: `model.vocab_rows` where set (a code that sizes it from its own config), else the
    ids the data uses, plus one for a shifted-in CLS id (model.cls_token=shift reads id rows - 1)."""
    rows = base.vocab_rows
    if rows is None:
        return needed + int(base.cls_token == "shift" and base.pool == "cls")
    if rows < needed:
        raise LRAError(f"model.vocab_rows={rows} is smaller than the {needed} token ids this run uses; "
                       "raise it or set it to null")
    return rows


def build_model(model: Mapping, task: Mapping, mask_token: bool = False) -> Classifier:
    """Build the classifier for `task` (vocab, max_len, classes, dual) from a model config.

    `mask_token`: one more embedding row, id `task.vocab_size`, for the [MASK] token of self-pretraining
    (lra.run.pretrain); both stages build it, so the pretrained encoder loads into the fine-tuned one as it is."""
    cfg = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else dict(model)
    base, options = split_model(cfg)
    encoder = Encoder(
        layers=layer_mixers(base.mixer, base.n_layers, list(base.attention_layers or [])),
        vocab_size=token_rows(base, task["vocab_size"] + int(mask_token)),
        max_len=task["max_len"],
        mixer_options={base.mixer: options},
        **base.encoder_options(),
    )
    classifier = Classifier(
        encoder, base.d_model, base.d_ff, task["n_classes"], bool(task.get("dual", False)),
        task.get("interaction", "paper"), base.head,
    )
    classifier = initialise(classifier, base.init)
    if not isinstance(base.compile, bool):
        raise LRAError(f"model.compile={base.compile!r} must be true or false")
    if base.compile:
        compile_blocks(encoder)
    return classifier


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "BASE_KEYS", "Classifier", "Encoder", "ModelConfig", "build_model", "count_parameters", "layer_mixers",
    "split_model",
]
