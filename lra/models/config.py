"""The model config's schema: the keys every model shares (conf/model/_base.yaml holds their defaults), declared
once. The base keys, `build_model`'s encoder arguments and the config check (lra.run.validate) are read from it;
any other key of a model config is an option of its mixer. A new shared key: a field here and its yaml default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from lra.errors import LRAError

# How lra.run.validate checks a key, before any data is read: a positive integer, an integer >= 0, a share in [0, 1).
POSITIVE, NON_NEGATIVE, FRACTION = "positive", "non_negative", "fraction"


def encoder(check: str | None = None) -> Any:
    """A key passed on to lra.models.encoder.Encoder under its own name."""
    return field(metadata={"encoder": True, "check": check})


@dataclass(frozen=True)
class ModelConfig:
    name: str
    mixer: str  # every layer's mixer: a registered name or a dotted class path
    attention_layers: list[int]  # the layers that use exact attention instead (negative = from the end)
    n_layers: int = field(metadata={"check": POSITIVE})
    d_model: int = encoder(POSITIVE)
    n_heads: int = encoder(POSITIVE)
    d_ff: int = encoder(NON_NEGATIVE)  # 0: blocks without a feed-forward branch (the S4 recipes)
    dropout: float = encoder(FRACTION)
    attn_dropout: float = encoder(FRACTION)
    norm: str = encoder()
    norm_type: str = encoder()
    pool: str = encoder()
    pos: str = encoder()
    zero_pad: bool = encoder()
    impl: str = encoder()
    qkv_dim: int | None = encoder()
    zero_is_pad: bool = encoder()
    init: str = field()  # lra.models.init
    head: str = field()  # lra.models.classifier
    cls_token: str = encoder()  # pool=cls: learned | shift (an id shifted in, the last token dropped)
    vocab_rows: int | None = field(metadata={"check": None})  # rows of the token table (lra.models.token_rows)
    pos_rows: int | None = encoder()  # rows of the position table; null = the input length
    compile: bool = field()  # torch.compile each encoder block (lra.models.compiled)
    block: str = encoder()  # lra: the LRA release's block | fnet: FNet's own code's (lra.models.fnet_block)

    def encoder_options(self) -> dict:
        """The keys lra.models.encoder.Encoder takes as they are."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("encoder")}


BASE_KEYS = tuple(f.name for f in fields(ModelConfig))


def split_model(cfg: Mapping) -> tuple[ModelConfig, dict]:
    """A model config -> its shared keys and its mixer's options (every other key)."""
    missing = [k for k in BASE_KEYS if k not in cfg]
    if missing:
        raise LRAError(
            f"model.{missing[0]} is missing; a model config starts from the shared keys (defaults: [_base], "
            "conf/model/_base.yaml)"
        )
    base = ModelConfig(**{k: cfg[k] for k in BASE_KEYS})
    return base, {k: v for k, v in cfg.items() if k not in BASE_KEYS}


def checked(kind: str) -> tuple[str, ...]:
    """The dotted keys (`model.<key>`) checked as `kind`."""
    return tuple(f"model.{f.name}" for f in fields(ModelConfig) if f.metadata.get("check") == kind)
