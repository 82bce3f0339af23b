"""Which kernel `scaled_dot_product_attention` runs inside a model: FlashAttention, memory-efficient, cuDNN or the
plain math path. Asked of torch's own dispatcher (`torch._fused_sdp_choice`) with each call's real arguments."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.attention import SDPBackend

import lra.models.mixers.attention as attention


def sdpa_kernels(forward: Callable[[], object]) -> list[str]:
    """The kernel of every SDPA call that `forward()` makes (exact attention, Luna, Linformer...), in call order."""
    chosen: list[str] = []
    sdpa = attention.F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, dropout_p=0.0, **options):
        choice = torch._fused_sdp_choice(q, k, v, attn_mask, dropout_p, options.get("is_causal", False))
        chosen.append(SDPBackend(choice).name.lower())
        return sdpa(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, **options)

    attention.F.scaled_dot_product_attention = recording
    try:
        forward()
    finally:
        attention.F.scaled_dot_product_attention = sdpa
    return chosen
