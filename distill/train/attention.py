"""Attention for packed, padding-free batches without FlashAttention: causal SDPA per conversation.

TRL's padding-free collator flattens a batch into one sequence and passes the conversation
boundaries as `cu_seq_lens_q` (cumulative lengths). FlashAttention's variable-length kernel uses
them on a GPU. Plain `sdpa` instead gets a block-diagonal mask built from the restarting position
ids: it computes the whole L x L score matrix (masked), repeats the key/value heads, and needs an
L x L mask, so on a CPU a packed row of 2048 tokens costs several times the attention of its
conversations. `sdpa_packed` runs causal SDPA on each conversation's slice instead: no mask, no
work across conversations, the same result.

Only for training on padding-free batches (every batch carries `cu_seq_lens_q`, none carries an
attention mask); without boundaries it is plain causal SDPA. It is registered under
PACKED_SDPA and never written into a saved model's config.
"""

from __future__ import annotations

import itertools
from typing import Any

PACKED_SDPA = "sdpa_packed"


def packed_sdpa_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    if attention_mask is not None or bounds is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    bounds = bounds.tolist()
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    parts = [
        F.scaled_dot_product_attention(
            query[:, :, a:b],
            key[:, :, a:b],
            value[:, :, a:b],
            dropout_p=dropout,
            scale=scaling,
            is_causal=True,
            enable_gqa=gqa,
        )
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make `attn_implementation="sdpa_packed"` available to transformers; returns the name."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
    return PACKED_SDPA
