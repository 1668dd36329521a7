"""The adapted top layer read only where an answer is read.

A one-token answer needs the model's output at each prompt's last token alone. In the last layer
every other token is read only through its keys and values: those come from the layer's norm and
two small projections, and the queries, the attention output, the output projection and the MLP
(most of the layer's weights) are needed at the last token only. So when the adapter sits on the
last layer alone (`lora_layers` 1, the default), every token the prompts share or own gets its
keys and values once, and the model's own layer then runs on each prompt's last token over them:
the same result as the whole layer over every token, at a small share of its cost, for the reads
after every update and for the updates themselves.
"""

from __future__ import annotations

import sys
from typing import Callable

import torch
from transformers import DynamicCache

_NEEDED = ("input_layernorm", "post_attention_layernorm", "mlp")
_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def rotary(layer: torch.nn.Module) -> Callable | None:
    """The position rotation of the layer's own modelling module (Llama, Mistral, Qwen2, ...), or
    None where the layer is not of that shape."""
    attention = getattr(layer, "self_attn", None)
    if attention is None or not all(hasattr(layer, n) for n in _NEEDED):
        return None
    if not all(hasattr(attention, n) for n in (*_PROJECTIONS, "head_dim", "layer_idx")):
        return None
    return getattr(sys.modules[type(attention).__module__], "apply_rotary_pos_emb", None)


def last_token_states(decoder, segments: list[torch.Tensor], sequences: list[list[int]],
                      run_last: Callable[..., torch.Tensor]) -> torch.Tensor:
    """The top layer's output (after the final norm) at each sequence's last token, (B, d).

    `segments` are the trunk's states of the token runs the prompts are built from (a run shared
    by many prompts appears once); `sequences` name, per prompt, its runs in order. `run_last`
    runs the model's top stage on (states, attention, positions, cache) and returns its hidden
    states: here on one token per prompt, after the keys and values of all its others."""
    layer = decoder.layers[-1]
    attention, rotate = layer.self_attn, rotary(layer)
    flat = torch.cat(segments)
    starts = torch.tensor([0] + [len(s) for s in segments]).cumsum(0).tolist()
    first = [0] * len(segments)  # each run's first position: after the runs before it, alike in every prompt
    for runs in sequences:
        at = 0
        for run in runs:
            first[run], at = at, at + len(segments[run])
    token_positions = torch.cat([torch.arange(p, p + len(s)) for p, s in zip(first, segments)]).to(flat.device)
    indices = [torch.cat([torch.arange(starts[run], starts[run + 1]) for run in runs]) for runs in sequences]
    normed = layer.input_layernorm(flat)
    shape = (1, len(flat), -1, attention.head_dim)
    keys = attention.k_proj(normed).view(shape).transpose(1, 2)
    values = attention.v_proj(normed).view(shape).transpose(1, 2)
    cos, sin = decoder.rotary_emb(flat[None], token_positions[None])
    keys = rotate(keys, keys, cos, sin)[1]
    width = max(len(i) for i in indices) - 1
    gather = torch.zeros((len(indices), width), dtype=torch.long, device=flat.device)
    mask = torch.zeros((len(indices), width + 1), dtype=torch.long, device=flat.device)
    for row, index in enumerate(indices):  # left-padded: every prompt's last token at the end
        gather[row, width - len(index) + 1:] = index[:-1]
        mask[row, width - len(index) + 1:] = 1
    cache = DynamicCache()
    cache.update(keys[0][:, gather].transpose(0, 1), values[0][:, gather].transpose(0, 1), 0)
    last = torch.stack([index[-1] for index in indices])
    hidden = run_last(flat[last][:, None], mask, (mask.sum(1) - 1)[:, None], cache)
    return hidden[:, -1]
