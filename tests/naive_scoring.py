"""The reference the fast scorer must equal: one full (prompt + action) sequence per action
(GLAM / Lamorel style), every logit computed. Used by the tests and the latency benchmark."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from mutualrl.envs import Situation
from mutualrl.teachers.scoring import PrefixSharedScorer


def naive_logliks(scorer: PrefixSharedScorer, situations: Sequence[Situation]) -> torch.Tensor:
    """Reference scoring: one full (prompt + action) sequence per action, all logits computed."""
    actions = scorer.answer_ids(situations[0])
    prompts = [sum(scorer.prompt_ids(s), []) for s in situations]
    if scorer.is_seq2seq:
        inputs, targets, mask = scorer.decoder_tensors(actions)
        rows = []
        for p in prompts:
            enc = torch.tensor([p] * len(actions), device=scorer.device)
            logits = scorer.model(input_ids=enc, decoder_input_ids=inputs).logits
            scorer.tokens_processed += len(actions) * len(p) + int(mask.sum())
            logp = torch.log_softmax(logits.float(), -1).gather(-1, targets[..., None]).squeeze(-1)
            rows.append((logp * mask).sum(-1))
        return torch.stack(rows)
    sequences = [p + a for p in prompts for a in actions]
    ids = pad_sequence([torch.tensor(s) for s in sequences], batch_first=True, padding_value=scorer.pad_id)
    mask = pad_sequence([torch.ones(len(s), dtype=torch.long) for s in sequences], batch_first=True)
    logits = scorer.model(input_ids=ids.to(scorer.device), attention_mask=mask.to(scorer.device)).logits
    scorer.tokens_processed += int(mask.sum())
    logp = torch.log_softmax(logits.float(), -1)
    scores = []
    for row, (p, a) in enumerate((p, a) for p in prompts for a in actions):
        positions = torch.arange(len(p) - 1, len(p) + len(a) - 1)
        scores.append(logp[row, positions, torch.tensor(a)].sum())
    return torch.stack(scores).view(len(prompts), len(actions))
