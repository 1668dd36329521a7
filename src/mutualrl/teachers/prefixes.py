"""The frozen trunk's keys and values of the latest headers read, found by their longest shared start.

On a door level a header holds the mission and the facts of a state, and most new states differ
from one read before only after their first few facts ("You carry nothing. The green door is
locked." then what is in view). A new header runs through the trunk only from where it parts from
the closest kept one: on `BlockedUnlockPickup`'s states of random play, a third fewer tokens than
from the system message. The trunk never changes, so what is kept stays right for good; only the
latest `size` headers are kept (about 1.5 MB each for SmolLM2-135M in bfloat16).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch

#: per layer of the trunk, (keys, values), each (1, key-value heads, tokens, head size)
LayerKV = list[tuple[torch.Tensor, torch.Tensor]]


class Prefix(NamedTuple):
    """What a new header starts from: its first `length` tokens' keys and values and trunk states."""

    length: int
    kv: LayerKV | None  # None where `length` is 0
    states: torch.Tensor | None  # (length, d)


class KeptHeaders:
    """The trunk's keys, values and states of the latest `size` headers, by their tokens."""

    def __init__(self, size: int = 128):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = size
        self._kept: OrderedDict[tuple[int, ...], tuple[LayerKV, torch.Tensor]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def longest(self, tokens: list[int], limit: int) -> Prefix:
        """The longest start, of at most `limit` tokens, that `tokens` share with a kept header."""
        best, found = 0, None
        for header in self._kept:
            n = shared_length(header, tokens, limit)
            if n > best:
                best, found = n, header
        if found is None:
            return Prefix(0, None, None)
        self._kept.move_to_end(found)
        kv, states = self._kept[found]
        return Prefix(best, [(k[:, :, :best], v[:, :, :best]) for k, v in kv], states[:best])

    def keep(self, tokens: list[int], kv: LayerKV, states: torch.Tensor) -> None:
        """Keep a header's keys and values (every token of it) and its trunk states."""
        if not self.size:
            return
        self._kept[tuple(tokens)] = (kv, states)
        self._kept.move_to_end(tuple(tokens))
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)


def shared_length(a: tuple[int, ...] | list[int], b: list[int], limit: int) -> int:
    """How many first tokens `a` and `b` share, at most `limit`."""
    n = min(len(a), len(b), limit)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def stacked(prefixes: list[Prefix], layers: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """The prefixes as one batch, left-padded: per layer (keys, values) of (B, heads, P, d), and
    the (B, P) mask of the tokens each row holds. Every prefix must hold `layers` layers or none."""
    width = max(p.length for p in prefixes)
    some = next((p.kv for p in prefixes if p.kv is not None), None)
    mask = torch.zeros((len(prefixes), width), dtype=torch.long)
    if some is None:
        return [], mask
    out = []
    for layer in range(layers):
        shape = (len(prefixes), some[layer][0].shape[1], width, some[layer][0].shape[3])
        keys, values = some[layer][0].new_zeros(shape), some[layer][1].new_zeros(shape)
        for row, p in enumerate(prefixes):
            if p.length:
                keys[row, :, width - p.length:] = p.kv[layer][0][0]
                values[row, :, width - p.length:] = p.kv[layer][1][0]
        out.append((keys, values))
    for row, p in enumerate(prefixes):
        if p.length:
            mask[row, width - p.length:] = 1
    return out, mask
