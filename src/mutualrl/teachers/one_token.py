"""One-token answers (a mission's clozes), every token prompts share run once.

Prompts offering different answers are read in one call: the headers' common start (the system
message), each mission's header with the lead its clozes share, then one token per cloze; through
the frozen trunk at the first read (`_read_new_prompts`), through the adapted top layers after each
update (`_last_states`). With the adapter on the last layer alone, that layer runs in full only at
each prompt's last token (`top_layer`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import DynamicCache

from mutualrl.envs import Situation
from mutualrl.teachers import top_layer


class OneTokenReads:
    """The shared-token reads of `scoring.PrefixSharedScorer`, whose caches and stages they use:
    `_header_cache`, `trunk_cache`, `_start`, `_run`, `_header_kv`, `_by_header`."""

    def _tree_pass(self, stage: str, shared: torch.Tensor, key: str, heads: list[torch.Tensor], owner: list[int],
                   rests: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One stage over prompts that share their start: `shared` (1, S, ...: token ids or states,
        `key` naming it) once, its cache kept (for good below the adapter, per teacher version
        above it); then `heads`, one row per header (its own tokens and its prompts' common start),
        left-padded into one batch after it; then each prompt's remaining tokens `rests` after its
        header's row (`owner`), right-padded. Returns the hidden states of each head and of each
        prompt's remaining tokens (empty where none)."""
        fill = self.pad_id if heads[0].dtype == torch.long else 0
        width = shared.shape[1]
        kv = DynamicCache()
        if width:
            kv, _ = self._header_kv(stage, shared, key)
            kv.batch_repeat_interleave(len(heads))
        ids, mask = pad(heads, left=True, fill=fill)
        attention = torch.cat([mask.new_ones(len(heads), width), mask], dim=1)
        head_hidden, kv = self._run(stage, ids, attention, (attention.cumsum(1) - 1)[:, width:], kv)
        own = [head_hidden.new_zeros(0, *head_hidden.shape[2:])] * len(rests)
        more = [k for k, tokens in enumerate(rests) if len(tokens)]
        if more:
            rows = torch.tensor([owner[k] for k in more], device=self.device)
            kv.reorder_cache(rows)  # one copy of its header's cache per prompt
            ids, rest_mask = pad([rests[k] for k in more], left=False, fill=fill)
            positions = attention.sum(1)[rows][:, None] + torch.arange(ids.shape[1], device=self.device)[None]
            hidden, _ = self._run(stage, ids, torch.cat([attention[rows], rest_mask], dim=1), positions, kv)
            for row, k in enumerate(more):
                own[k] = hidden[row, rest_mask[row].bool()]
        return [head_hidden[g, mask[g].bool()] for g in range(len(heads))], own

    def _read_new_prompts(self, groups: list[tuple[list[int], list[list[int]]]]) -> None:
        """The frozen trunk's first pass over prompts it has not seen (one-token answers), all at
        once (a pass through the trunk costs as much as a few dozen tokens, whatever its batch):
        the headers' shared start (kept for good), then each header with its new prompts' common
        start, one row each, then every new prompt's remaining tokens. Fills the trunk caches."""
        new = [(h, list(dict.fromkeys(tuple(r) for r in rests if (str(h), tuple(r)) not in self.trunk_cache)))
               for h, rests in groups]
        new = [(h, [list(r) for r in rests]) for h, rests in new if rests]
        if not new:
            return
        self._start = common_prefix([h for h, _ in new] + ([self._start] if self._start is not None else []))
        shared = self._shared([h for h, _ in new])
        start = new[0][0][:shared]
        stems = [common_prefix(rests) for _, rests in new]
        tensor = lambda tokens: torch.tensor(tokens, dtype=torch.long, device=self.device)  # noqa: E731
        with torch.no_grad():
            heads, own = self._tree_pass(
                "lower", tensor([start]), str(start), [tensor(h[shared:] + stem) for (h, _), stem in zip(new, stems)],
                [g for g, (_, rests) in enumerate(new) for _ in rests],
                [tensor(r[len(stem):]) for (_, rests), stem in zip(new, stems) for r in rests])
            start_states = self._header_kv("lower", tensor([start]), str(start), copy_kv=False)[1][0] if shared else None
        k = 0
        for (h, rests), head in zip(new, heads):
            mine = len(h) - shared
            if ("lower", str(h)) not in self._header_cache:  # its states only: a cache is made if ever needed
                states = head[:mine] if start_states is None else torch.cat([start_states, head[:mine]])
                self._header_cache[("lower", str(h))] = (None, states[None])
            for r in rests:
                self.trunk_cache[(str(h), tuple(r))] = (torch.cat([head[mine:], own[k]]), None)
                k += 1
        while len(self.trunk_cache) > self.trunk_cache_size:
            self.trunk_cache.pop(next(iter(self.trunk_cache)))

    def _shared(self, headers: list[list[int]]) -> int:
        """How many of the headers' first tokens run once for all of them: the start every header
        read so far shares (the system message), the same from call to call so that its caches
        serve them all; each header keeps one token of its own."""
        start = common_prefix(headers + ([self._start] if self._start is not None else []))
        return min(len(start), min(len(h) for h in headers) - 1)

    def _last_states(self, situations: Sequence[Situation]) -> torch.Tensor:
        """The top layer's output at each prompt's last token (one-token answers, every prompt at
        once), each shared token through the top layers once (`_tree_pass`): the headers' common
        start (the system message), each distinct header's own tokens with its prompts' common
        start (a mission's clozes share their lead), then each prompt's remaining tokens; a
        prompt with none left is read at its header's end."""
        headers, parts = self._by_header(situations)
        groups = [(list(h), [parts[i][1] for i in rows]) for h, rows in headers.items()]
        self._read_new_prompts(groups)
        shared = self._shared([h for h, _ in groups])
        lower = [self._header_cache[("lower", str(h))][1][0] for h, _ in groups]
        heads, owner, rests = [], [], []
        for g, ((header, prompts), header_states) in enumerate(zip(groups, lower)):
            stem = len(common_prefix(prompts))
            states = [self.trunk_cache[(str(header), tuple(r))][0] for r in prompts]
            heads.append(torch.cat([header_states[shared:], states[0][:stem]]))
            owner += [g] * len(prompts)
            rests += [own[stem:] for own in states]
        if self._top_alone:
            start = [0] if shared else []
            sequences = [start + [1 + g] + ([1 + len(heads) + k] if len(rest) else []) for k, (g, rest) in
                         enumerate(zip(owner, rests))]
            last = top_layer.last_token_states(
                self._base_model().get_decoder(), [lower[0][:shared], *heads, *rests], sequences,
                lambda states, attention, positions, kv: self._run("upper", states, attention, positions, kv)[0])
        else:
            head_states, own = self._tree_pass("upper", lower[0][None, :shared], str(groups[0][0][:shared]),
                                               heads, owner, rests)
            last = torch.stack([rest[-1] if len(rest) else head_states[g][-1] for g, rest in zip(owner, own)])
        order = torch.tensor([i for rows in headers.values() for i in rows], device=self.device)
        return torch.empty_like(last).index_copy(0, order, last)


def pad(sequences: list[torch.Tensor], left: bool, fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L, ...) token ids or states padded with `fill` to the longest, on the left or the
    right, and the mask."""
    width = max(len(x) for x in sequences)
    out = sequences[0].new_full((len(sequences), width, *sequences[0].shape[1:]), fill)
    mask = torch.zeros((len(sequences), width), dtype=torch.long, device=out.device)
    for i, x in enumerate(sequences):
        span = slice(width - len(x), width) if left else slice(0, len(x))
        out[i, span], mask[i, span] = x, 1
    return out, mask


def common_prefix(sequences: list[list[int]]) -> list[int]:
    """The longest start that every sequence shares."""
    first = sequences[0]
    for length, token in enumerate(first):
        if any(len(seq) <= length or seq[length] != token for seq in sequences[1:]):
            return first[:length]
    return list(first)
