"""Exact, prefix-shared scoring of text actions by a local language model.

An action's score is its log-likelihood given the prompt. A causal model computes the prompt's
task header (system, mission, action list, question) once per adapter state, each situation's own
text once per batch, and then only the action tokens; a seq2seq model encodes each prompt once
and decodes only the actions. The result equals scoring one full sequence per action (GLAM /
Lamorel style; the reference lives beside the tests) to 1e-4.

Frozen trunk: an adapter sits on the top `lora_layers` layers only, so the lower layers' outputs
for a prompt never change. For Llama-like decoders they are computed once per prompt and kept; a
new adapter state re-runs only the top layers over them.

One-token answers (a mission's clozes) are read with each token prompts share run once
(`one_token.OneTokenReads`).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import DynamicCache

from mutualrl.envs import Situation
from mutualrl.teachers import top_layer
from mutualrl.teachers.base import by_answers
from mutualrl.teachers.one_token import OneTokenReads, common_prefix, pad
from mutualrl.teachers.prompt import system_prompt, user_message


class PrefixSharedScorer(OneTokenReads):
    """Log-likelihoods of each situation's actions under `model` (which may later get an adapter)."""

    def __init__(self, model, tokenizer, *, device: torch.device, lora_layers: int = 1,
                 dtype: torch.dtype = torch.float32):
        self.device = device
        self.model = model.to(self.device, dtype).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.is_seq2seq = bool(model.config.is_encoder_decoder)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.lora_layers = lora_layers
        self._header_cache: dict[tuple, Any] = {}
        self.trunk_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.trunk_cache_size = 50_000
        self.trunk_layers = self._trunk_depth()
        self._top_alone = self._last_layer_alone()
        self._action_ids: dict[str, list[int]] = {}
        self._prompt_ids: dict[Situation, tuple[list[int], list[int]]] = {}
        self._start: list[int] | None = None  # the start of every header read so far
        self.tokens_processed = 0

    def _trunk_depth(self) -> int:
        """How many lower layers are frozen for good (0: run the whole model every time).

        Only decoder-only models whose decoder is a plain `layers` list with a final `norm`
        (Llama, SmolLM, Mistral, Qwen2, ...) are split; the adapter lives above the cut."""
        if self.is_seq2seq:
            return 0
        decoder = self.model.get_decoder()
        layers = getattr(decoder, "layers", None)
        if not isinstance(layers, torch.nn.ModuleList) or not hasattr(decoder, "norm"):
            return 0
        if not all(hasattr(getattr(layer, "self_attn", None), "layer_idx") for layer in layers):
            return 0
        return max(0, len(layers) - self.lora_layers)

    def _last_layer_alone(self) -> bool:
        """Whether the stage above the trunk is the model's last layer alone, of a shape whose
        keys and values `top_layer` can read apart: then one-token answers run the full layer at
        each prompt's last token only."""
        if not self.trunk_layers:
            return False
        decoder = self.model.get_decoder()
        return (len(decoder.layers) - self.trunk_layers == 1 and hasattr(decoder, "rotary_emb")
                and top_layer.rotary(decoder.layers[-1]) is not None)

    # ----------------------------------------------------------------- prompts

    def prompt_parts(self, situation: Situation) -> tuple[str, str]:
        """The prompt split into the task header (shared by every state of a mission) and the rest
        (a cloze: the start of the reply, after its mission and question)."""
        system, user = system_prompt(situation), user_message(situation)
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template([{"role": "system", "content": system},
                                                       {"role": "user", "content": user}],
                                                      tokenize=False, add_generation_prompt=True)
        else:
            text = f"{system}\n{user}\n" + ("" if situation.cloze else "Answer: ")
        if situation.cloze:  # the mission's clozes share one question: one header serves them all
            return text, situation.description
        cut = text.index(situation.description)
        return text[:cut], text[cut:]

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def action_ids(self, action: str) -> list[int]:
        if action not in self._action_ids:
            self._action_ids[action] = self._ids(action)
        return self._action_ids[action]

    def answer_ids(self, situation: Situation) -> list[list[int]]:
        """The tokens of each answer (a cloze's word follows its lead after a space)."""
        return [self.action_ids(" " + a if situation.cloze else a) for a in situation.actions]

    def prompt_ids(self, situation: Situation) -> tuple[list[int], list[int]]:
        """The header's and the rest's tokens, kept per situation (read again after every update)."""
        if situation not in self._prompt_ids:
            header, rest = self.prompt_parts(situation)
            self._prompt_ids[situation] = self._ids(header), self._ids(rest)
            if len(self._prompt_ids) > self.trunk_cache_size:
                self._prompt_ids.pop(next(iter(self._prompt_ids)))
        return self._prompt_ids[situation]

    # ----------------------------------------------------------------- scoring

    def logliks(self, situations: Sequence[Situation]) -> torch.Tensor:
        """Log-likelihood of each action given each prompt, shape (B, A), sharing prefixes."""
        if self.is_seq2seq:
            return self._seq2seq_logliks(situations)
        actions = self.answer_ids(situations[0])
        if self._one_token(situations):
            return self._logit_rows(self._last_states(situations), [a[0] for a in actions])
        headers, parts = self._by_header(situations)
        out = torch.empty(len(situations), len(actions), device=self.device)
        for header, rows, rests in _batches(headers, parts):
            if self.trunk_layers:
                out[rows] = self._score_from_trunk(header, rests, actions)
            else:
                out[rows] = self._score_group(header, rests, actions)
        return out

    def logliks_each(self, situations: Sequence[Situation]) -> list[torch.Tensor]:
        """Each prompt's answer scores, where prompts offer different answers (a mission's verb,
        colour and kind clozes): the prompts with one-token answers are read in one pass, so a
        mission's header and lead run once for all its clozes; the others one `logliks` per answer set."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(situations)
        one = [i for i, s in enumerate(situations) if self._one_token([s])]
        last = dict(zip(one, self._last_states([situations[i] for i in one]))) if one else {}
        for rows in by_answers(situations):
            scores = (self._logit_rows(torch.stack([last[i] for i in rows]),
                                       [a[0] for a in self.answer_ids(situations[rows[0]])])
                      if rows[0] in last else self.logliks([situations[i] for i in rows]))
            for i, row in zip(rows, scores):
                out[i] = row
        return out

    def _by_header(self, situations: Sequence[Situation]):
        """Each distinct header's prompt indices, and every prompt's (header, rest) tokens."""
        headers: dict[tuple[int, ...], list[int]] = {}
        parts = [self.prompt_ids(s) for s in situations]
        for i, (header, _) in enumerate(parts):
            headers.setdefault(tuple(header), []).append(i)
        return headers, parts

    def _one_token(self, situations: Sequence[Situation]) -> bool:
        """Whether every answer is one token, on a model with a trunk: the path that reads only what the choice needs."""
        return bool(self.trunk_layers) and all(len(a) == 1 for s in situations for a in self.answer_ids(s))

    # A causal model runs in stages: `_stage` picks which of its layers run. With a trunk, the
    # frozen lower layers run once per prompt (their outputs cached: no adapter touches them),
    # and each teacher version runs only the adapted top layers on those cached states.

    def _base_model(self):
        """The transformers model, under the peft wrapper once an adapter exists."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def _lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self._base_model().get_output_embeddings()(hidden).float(), dim=-1)

    @contextlib.contextmanager
    def _stage(self, stage: str):
        """Run only the `lower` (frozen, no final norm) or `upper` layers, or `all` (any decoder)."""
        decoder = self._base_model().get_decoder()
        if stage == "all":
            yield decoder
            return
        layers, norm = decoder.layers, decoder.norm
        cut = self.trunk_layers
        chosen = layers[:cut] if stage == "lower" else layers[cut:]
        offset = 0 if stage == "lower" else cut
        decoder.layers = torch.nn.ModuleList(chosen)
        for layer in chosen:  # the stage's KV cache holds only its own layers
            layer.self_attn.layer_idx -= offset
        if stage == "lower":
            decoder.norm = torch.nn.Identity()
        try:
            yield decoder
        finally:
            for layer in chosen:
                layer.self_attn.layer_idx += offset
            decoder.layers, decoder.norm = layers, norm

    def _run(self, stage: str, inputs: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor, kv=None):
        """Hidden states (after the final norm, except for `lower`) and the stage's KV cache."""
        key = "input_ids" if inputs.dtype == torch.long else "inputs_embeds"
        with self._stage(stage) as decoder:
            out = decoder(**{key: inputs}, attention_mask=attention, position_ids=positions,
                          cache=kv if kv is not None else DynamicCache(), use_cache=True)
        if stage != "upper":  # count each token once per pass through the whole stack
            self.tokens_processed += int(attention[:, -inputs.shape[1]:].sum())
        return out.last_hidden_state, out.cache

    def _traverse(self, stage: str, header_kv, h: int, rests: list[torch.Tensor], follow: torch.Tensor | None, n_actions: int):
        """Run every situation's own text after the shared header, then the action tokens.

        `rests` are left-padded so that every row ends at the last position. `follow` holds the
        action tokens after the first (B*A rows). Returns the rests' hidden states (B, W, ...),
        their mask, and the follow hidden states (or None)."""
        batch = len(rests)
        inputs, mask = pad(rests, left=True, fill=self.pad_id if rests[0].dtype == torch.long else 0)
        header_kv.batch_repeat_interleave(batch)
        attention = torch.cat([torch.ones((batch, h), dtype=torch.long, device=self.device), mask], dim=1)
        positions = h + (mask.cumsum(1) - 1).clamp(min=0)
        rest_hidden, kv = self._run(stage, inputs, attention, positions, header_kv)
        if follow is None:
            return rest_hidden, mask, None
        kv.batch_repeat_interleave(n_actions)
        steps = follow.shape[1]
        attention = torch.cat([attention.repeat_interleave(n_actions, 0),
                               torch.ones((batch * n_actions, steps), dtype=torch.long, device=self.device)], dim=1)
        lengths = (h + mask.sum(1)).repeat_interleave(n_actions)
        positions = lengths[:, None] + torch.arange(steps, device=self.device)[None]
        follow_hidden, _ = self._run(stage, follow, attention, positions, kv)
        return rest_hidden, mask, follow_hidden

    def _follow_ids(self, actions: list[list[int]], batch: int) -> torch.Tensor | None:
        """Each action's tokens after its first, right-padded, repeated per situation (B*A rows)."""
        steps = max(len(a) for a in actions) - 1
        if steps == 0:
            return None
        follow = torch.full((len(actions), steps), self.pad_id, device=self.device)
        for j, a in enumerate(actions):
            follow[j, : len(a) - 1] = torch.tensor(a[:-1])
        return follow.repeat(batch, 1)

    def _action_scores(self, last_hidden: torch.Tensor, follow_hidden: torch.Tensor | None,
                       actions: list[list[int]]) -> torch.Tensor:
        """Sum of the action tokens' log-probabilities from the hidden states that predict them.

        Where every action is one token, only those rows of the output layer are computed: the
        scores are then the actions' logits, which differ from their log-probabilities by one
        constant per prompt, so the choice among them (their softmax) is exactly the same."""
        if follow_hidden is None:
            return self._logit_rows(last_hidden, [a[0] for a in actions])
        first = self._lm_head(last_hidden)
        scores = torch.stack([first[:, a[0]] for a in actions], dim=1)
        batch, n_actions = last_hidden.shape[0], len(actions)
        logp = self._lm_head(follow_hidden).view(batch, n_actions, follow_hidden.shape[1], -1)
        rest = [logp[:, j, torch.arange(len(a) - 1), torch.tensor(a[1:], dtype=torch.long)].sum(-1)
                for j, a in enumerate(actions)]
        return scores + torch.stack(rest, dim=1)

    def _logit_rows(self, hidden: torch.Tensor, ids: list[int]) -> torch.Tensor:
        """The logits of the tokens `ids` only, (B, len(ids)): a few rows of the output layer
        instead of the whole vocabulary."""
        head = self._base_model().get_output_embeddings()
        rows = torch.tensor(ids, device=self.device)
        logits = hidden @ head.weight[rows].T
        return (logits + head.bias[rows] if getattr(head, "bias", None) is not None else logits).float()

    def _header_kv(self, stage: str, header_input: torch.Tensor, key: str, copy_kv: bool = True):
        """The KV cache of a task header in a stage, and its hidden states. Cached per teacher
        version (the lower stage's never changes); computed anew when gradients are on, so the
        adapter learns through it. A caller that extends the cache gets a copy (`copy_kv`); one
        that needs only the hidden states gets no cache (a copy of every layer's is not free)."""
        cache_key = (stage, key)
        learning = torch.is_grad_enabled() and stage != "lower"
        if learning or cache_key not in self._header_cache or (copy_kv and self._header_cache[cache_key][0] is None):
            h = header_input.shape[1]
            with torch.set_grad_enabled(learning):
                hidden, kv = self._run(stage, header_input, torch.ones((1, h), dtype=torch.long, device=self.device),
                                       torch.arange(h, device=self.device)[None])
            if learning:
                return kv, hidden
            self._header_cache[cache_key] = (kv, hidden)
        kv, hidden = self._header_cache[cache_key]
        return (copy.deepcopy(kv) if copy_kv else None), hidden

    def forget_adapted_headers(self) -> None:
        """Drop header caches that depend on the adapter (kept: the frozen lower stage's)."""
        self._header_cache = {k: v for k, v in self._header_cache.items() if k[0] == "lower"}

    def _score_group(self, header: list[int], rests: list[list[int]], actions: list[list[int]]) -> torch.Tensor:
        """All layers at once (models without a separable trunk)."""
        kv, _ = self._header_kv("all", torch.tensor([header], device=self.device), str(header))
        rest_hidden, _, follow_hidden = self._traverse(
            "all", kv, len(header), [torch.tensor(r, device=self.device) for r in rests],
            self._follow_ids(actions, len(rests)), len(actions))
        return self._action_scores(rest_hidden[:, -1], follow_hidden, actions)

    def _trunk_states(self, header: list[int], rests: list[list[int]], actions: list[list[int]]):
        """The frozen trunk's outputs for a header and each rest (with its action tokens after the
        first), computed only for prompts it has not seen: (header states, [(rest, follow)])."""
        keys = [_trunk_key(header, r, actions) for r in rests]
        missing = [i for i, key in enumerate(keys) if key not in self.trunk_cache]
        lower_kv, header_states = self._header_kv("lower", torch.tensor([header], device=self.device), str(header),
                                                  copy_kv=bool(missing))
        if missing:
            with torch.no_grad():
                hidden, mask, follow = self._traverse(
                    "lower", lower_kv, len(header), [torch.tensor(rests[i], device=self.device) for i in missing],
                    self._follow_ids(actions, len(missing)), len(actions))
            for row, i in enumerate(missing):
                own = hidden[row, mask[row].bool()]
                self.trunk_cache[keys[i]] = (
                    own, follow.view(len(missing), len(actions), *follow.shape[1:])[row] if follow is not None else None)
            while len(self.trunk_cache) > self.trunk_cache_size:
                self.trunk_cache.pop(next(iter(self.trunk_cache)))
        return header_states, [self.trunk_cache[key] for key in keys]

    def _score_from_trunk(self, header: list[int], rests: list[list[int]], actions: list[list[int]]) -> torch.Tensor:
        """The top layers over cached trunk states, after the header's (one header at a time)."""
        header_states, states = self._trunk_states(header, rests, actions)
        upper_kv, _ = self._header_kv("upper", header_states, str(header))
        follow = torch.cat([f for _, f in states]) if states[0][1] is not None else None
        rest_hidden, _, follow_hidden = self._traverse("upper", upper_kv, len(header), [s for s, _ in states],
                                                       follow, len(actions))
        return self._action_scores(rest_hidden[:, -1], follow_hidden, actions)

    def _seq2seq_logliks(self, situations: Sequence[Situation]) -> torch.Tensor:
        prompts = [sum(self.prompt_ids(s), []) for s in situations]
        enc_ids = pad_sequence([torch.tensor(p) for p in prompts], batch_first=True, padding_value=self.pad_id)
        enc_mask = pad_sequence([torch.ones(len(p), dtype=torch.long) for p in prompts], batch_first=True)
        enc_ids, enc_mask = enc_ids.to(self.device), enc_mask.to(self.device)
        encoded = self.model.get_encoder()(input_ids=enc_ids, attention_mask=enc_mask).last_hidden_state
        self.tokens_processed += int(enc_mask.sum())
        actions = self.answer_ids(situations[0])
        batch, n_actions = len(situations), len(actions)
        decoder_inputs, targets, target_mask = self.decoder_tensors(actions)
        out = self.model(
            encoder_outputs=(encoded.repeat_interleave(n_actions, 0),),
            attention_mask=enc_mask.repeat_interleave(n_actions, 0),
            decoder_input_ids=decoder_inputs.repeat(batch, 1),
        )
        self.tokens_processed += batch * sum(len(a) for a in actions)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        picked = logp.gather(-1, targets.repeat(batch, 1)[..., None]).squeeze(-1) * target_mask.repeat(batch, 1)
        return picked.sum(-1).view(batch, n_actions)

    def decoder_tensors(self, actions: list[list[int]]):
        start = self.model.config.decoder_start_token_id
        longest = max(len(a) for a in actions)
        inputs = torch.full((len(actions), longest), self.pad_id, device=self.device)
        targets = torch.full((len(actions), longest), self.pad_id, device=self.device)
        mask = torch.zeros((len(actions), longest), device=self.device)
        for j, a in enumerate(actions):
            inputs[j, : len(a)] = torch.tensor([start] + a[:-1])
            targets[j, : len(a)] = torch.tensor(a)
            mask[j, : len(a)] = 1
        return inputs, targets, mask


def _batches(headers: dict[tuple[int, ...], list[int]], parts: list[tuple[list[int], list[int]]]):
    """(header, prompt indices, rests) to read in one pass each: a header with several prompts
    with them; the prompts alone under their headers together, after the headers' common start
    (one pass rather than one per prompt: the clozes read the other way round, whose headers hold
    the question and whose one answer is the mission)."""
    alone = [rows[0] for rows in headers.values() if len(rows) == 1]
    stem = common_prefix([parts[i][0] for i in alone]) if len(alone) > 1 else []
    together = set(alone) if stem else set()
    for header, rows in headers.items():
        if rows[0] not in together:
            yield list(header), rows, [parts[i][1] for i in rows]
    if together:
        yield stem, alone, [parts[i][0][len(stem):] + parts[i][1] for i in alone]


def _trunk_key(header: list[int], rest: list[int], actions: list[list[int]]) -> tuple:
    """A prompt's key in the trunk cache. The states cached after a rest include the answers' tokens
    after their first where an answer is longer than one token, so those answers are part of the
    key: prompts with the same text may offer different answers (a mission as another cloze's answer)."""
    key = (str(header), tuple(rest))
    return key + (tuple(map(tuple, actions)),) if max(len(a) for a in actions) > 1 else key
