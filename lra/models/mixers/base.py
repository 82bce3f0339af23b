"""The token-mixer contract, declared once: `Mixer` (what every mixer is) and `HeadedMixer` (the multi-head
query/key/value projection every attention-like mixer shares).

A mixer is built as `cls(d_model, n_heads, max_len, dropout, **options, **base)` and called as `mixer(x[B, L, D],
mask[B, L]) -> [B, L, D]` (mask True = real token). `max_len` is the longest sequence the encoder feeds it (CLS
included); `dropout` is the attention dropout. `base` holds the options every mixer takes, which a subclass passes
on to `Mixer.__init__` untouched:

- `impl`: "paper" (the method as its paper defines it) or "release" (what the LRA release code computed). A name
  can register a separate release class (`@register(name, impl="release")`); one that does not behaves the same
  under both values, and `self.impl` tells a class which one was asked for.
- `qkv_dim`: the attention width (the release's `qkv_dim`), default d_model. Mixers without heads ignore it.
- `rotary`: rotary positions (`model.pos=rotary`, Su et al. 2021): `HeadedMixer.heads` rotates queries and keys
  by their position, so scores depend on relative offsets only; a mixer without both (`queries_and_keys()`) stops.

What a mixer needs beyond that, it declares as class attributes that the encoder reads, with the defaults below;
a mixer overrides only what differs:

- `uses_mask = True`: real outputs never depend on padded content. False: the method mixes pads like tokens by
  design (FNet); the encoder then zeroes pads first if `model.zero_pad` is set. Say so in the docstring.
- `uses_heads = True`: the mixer splits `d_model` into `n_heads` heads, so `d_model % n_heads` must be 0.
- `uses_state = False`: True makes the encoder call `mixer(x, mask, state=state)` with one dict per encoder
  forward, shared by all layers, to read and write in place (Luna's packed sequence). Called without `state` the
  mixer must still work (start afresh). The state also holds `PADDED` (below): False when the batch has no
  padding. `follows_state()`: the encoder calls it on a `uses_state` mixer that an earlier layer of the same class
  precedes, so that the state always holds what that earlier layer wrote: drop what the mixer only uses to start
  the state (Luna's P), or DDP finds parameters that never get a gradient.
- `ssm_params = ()`: names of the mixer's own parameters (as in its `named_parameters()`) that form a separate
  optimiser group: `optim.ssm_lr` (null = `optim.lr`) and no weight decay, as state-space models train their
  recurrence (S4D's step and A, the LRU's lambda). `no_decay_params = ()`: parameters at `optim.lr` without weight
  decay (S4D's step where the S4 recipes leave its lr unset). Either may be set per instance from an option.
  `declared_parameters(model, attribute)` collects them for the optimiser (lra.run.task.param_groups).
- `restrict(window) -> bool`: cut the mixer's reach to |i - j| <= window positions (None: full reach again), for
  the locality probe (lra.probe.locality); False, the default, where it cannot (it keeps its full reach). Exact and
  local attention band their scores, S4D truncates its kernel to lags <= window, the LRU subtracts the state that
  entered more than `window` steps ago, the convolution zeroes taps beyond it. The window is `self.window`.
- `resizer(layer, n_layers, cls) -> nn.Module | None`: a module `(x, mask) -> (x, mask)` that layer `layer` applies,
  changing the sequence (and mask) that it, later layers and the pooling see; `cls` says whether position 0 is the
  CLS token. Default: None (no resizing). The module's `placement` says where (lra.models.encoder.PLACEMENTS):
  "input" (the default when it has none): the residual stream before the layer (the Fourier Transformer paper's
  filter); "normed" (pre-norm blocks only): the layer's normalised input, which then *is* the residual stream, the
  raw one not carried on (the Fourier Transformer code's layer 0). A resizer that returns an all-True mask ends
  masking from there on: later layers, the final norm and the pooling treat every position as real.
- `first_row(x, mask, state=None) -> [B, 1, D]`: the output at position 0 alone, for a last layer whose other
  positions nothing reads (pool=cls or first: lra.models.encoder.Encoder.reads_first_only); `state` as `forward`
  gets it (only where `uses_state`). Default: the whole output's first row; a mixer overrides it where position 0
  costs less by itself (FNet: one DFT of the column sums; exact attention: one query against every key).
- `flax_dense = ()`: names of the mixer's nn.Linear submodules that the release built with flax's `nn.Dense`
  defaults (lecun-normal kernel, zero bias), which `model.init=release` gives them instead of xavier (Sinkhorn's
  sort-net logits).

A mixer from outside this repository subclasses `Mixer` and is selected by its dotted class path
(`model.mixer=my_pkg.my_mixer.MyMixer`); one in this package registers a short name with `@register`.
"""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError

# The key of the encoder's per-forward state that says whether the batch may hold padding: False only when the
# host knows it holds none (the batch's `padded`, lra.data.base.to_batch), so a mixer can skip its mask.
PADDED = "padded"

# model.impl: the method as its paper defines it, or as the LRA release code computed it.
IMPLS = ("paper", "release")


def check_heads(width: int, n_heads: int, needed_by: str, key: str = "model.d_model") -> None:
    """The one head-divisibility check, with the one message."""
    if n_heads < 1 or width % n_heads:
        raise LRAError(
            f"{key}={width} is not divisible by model.n_heads={n_heads}, which {needed_by} needs; change one of them"
        )


def attend_all_if_empty(mask: torch.Tensor) -> torch.Tensor:
    """A sequence with no real token is treated as all real, so no attention row is empty (never NaN)."""
    return mask | ~mask.any(dim=-1, keepdim=True)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, L, H*Dh] -> [B, H, L, Dh]."""
    b, n, d = x.shape
    return x.view(b, n, n_heads, d // n_heads).transpose(1, 2)


def within(query_pos: torch.Tensor, key_pos: torch.Tensor, window: int) -> torch.Tensor:
    """[..., Q] and [..., K] positions -> [..., Q, K]: |i - j| <= window (the locality probe's band)."""
    return (query_pos[..., :, None] - key_pos[..., None, :]).abs() <= window


def rotate(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary positions on [B, H, L, Dh]: channel pair (j, j + Dh/2) of position p turned by p * base^(-2j/Dh)."""
    half = x.shape[-1] // 2
    freq = base ** -(torch.arange(half, device=x.device, dtype=torch.float32) / half)  # [Dh/2]
    angle = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)[:, None] * freq  # [L, Dh/2]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, Dh] -> [B, L, H*Dh]."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


class Mixer(nn.Module):
    """Base of every token mixer: the contract's optional parts with their defaults (see the module docstring)."""

    uses_mask: bool = True
    uses_heads: bool = True
    uses_state: bool = False
    ssm_params: tuple[str, ...] = ()
    no_decay_params: tuple[str, ...] = ()
    flax_dense: tuple[str, ...] = ()
    window: int | None = None  # set by `restrict`
    # True for the methods the LRA release has (set by @register(..., impl="release")): only those change with impl.
    released: bool = False

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        impl: str = "paper",
        qkv_dim: int | None = None,
        rotary: bool = False,
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise LRAError(f"model.impl={impl!r} is not an implementation; use one of: {', '.join(IMPLS)}")
        if rotary and not self.queries_and_keys():
            raise rotary_error(type(self))
        self.rotary = rotary
        self.d_model = d_model
        self.n_heads = n_heads
        self.max_len = max_len
        self.dropout = dropout
        self.impl = impl
        self.qkv_dim = d_model if qkv_dim is None else qkv_dim
        if self.uses_heads:
            check_heads(self.qkv_dim, n_heads, type(self).__name__, "model.qkv_dim" if qkv_dim else "model.d_model")

    def resizer(self, layer: int, n_layers: int, cls: bool) -> nn.Module | None:
        return None

    def restrict(self, window: int | None) -> bool:
        return False

    def follows_state(self) -> None:
        return None

    def first_row(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        return (self(x, mask) if state is None else self(x, mask, state=state))[:, :1]

    @classmethod
    def queries_and_keys(cls) -> bool:
        """Whether the mixer scores queries against keys of its own sequence (what rotary positions rotate)."""
        return False


def rotary_error(cls: type) -> LRAError:
    return LRAError(
        f"model.pos=rotary rotates queries and keys, and mixer {cls.__qualname__} has none; "
        "use model.pos=sinusoidal, learned or none"
    )


def declared_parameters(model: nn.Module, attribute: str) -> list[nn.Parameter]:
    """Every parameter that a mixer inside `model` names in its `attribute` (ssm_params, no_decay_params), once."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, Mixer) and getattr(module, attribute):
            own = dict(module.named_parameters())
            for name in getattr(module, attribute):
                found[id(own[name])] = own[name]
    return list(found.values())


class HeadedMixer(Mixer):
    """Multi-head mixers: one fused bias-free input projection `qkv` (as the released LRA Transformer; `qkv_bias`:
    with biases, as FNet's own code's attention, which the encoder asks for under model.block=fnet) to the
    attention width `qkv_dim`, and an output projection `out` back to d_model (bias-free under impl=release for the
    methods the release has, as released). Every attention-like mixer lays out its weights this way, so they
    copy over one to one.

    `roles` names what the fused projection makes: "qkv"; "qv" when keys are derived from the queries (Reformer's
    shared QK); "v" when the attention weights are synthesized without queries or keys (Synthesizer).
    """

    roles: str = "qkv"

    def __init__(
        self, d_model: int, n_heads: int, max_len: int, dropout: float, qkv_bias: bool = False, **base
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        self.head_dim = self.qkv_dim // n_heads
        self.qkv = nn.Linear(d_model, len(self.roles) * self.qkv_dim, bias=qkv_bias)
        self.out = nn.Linear(self.qkv_dim, d_model, bias=not (self.impl == "release" and self.released))
        if self.rotary and self.head_dim % 2:
            raise LRAError(f"model.pos=rotary needs an even head width; {self.qkv_dim} / {n_heads} heads is odd")

    @classmethod
    def queries_and_keys(cls) -> bool:
        return "q" in cls.roles

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[B, L, D] -> one [B, H, L, Dh] tensor per role (q, k, v for "qkv"), from one matmul; queries and keys
        rotated by position under `rotary` (the keys Reformer derives from its queries inherit it)."""
        parts = [split_heads(t, self.n_heads) for t in self.qkv(x).chunk(len(self.roles), dim=-1)]
        if self.rotary:
            parts = [rotate(t) if role in "qk" else t for role, t in zip(self.roles, parts, strict=True)]
        return tuple(parts)

    def cross_heads(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries from `x` [B, L, D], keys and values from `context` [B, M, D], with the same "qkv" weights."""
        w, bias = self.qkv_dim, self.qkv.bias
        q = nn.functional.linear(x, self.qkv.weight[:w], None if bias is None else bias[:w])
        k, v = nn.functional.linear(context, self.qkv.weight[w:], None if bias is None else bias[w:]).chunk(2, dim=-1)
        return split_heads(q, self.n_heads), split_heads(k, self.n_heads), split_heads(v, self.n_heads)

    def finish(self, y: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[B, H, L', Dh] -> [B, length, D] through the output projection (internal padding cut off)."""
        if length is not None:
            y = y[:, :, :length]
        return self.out(merge_heads(y))
