"""A local Hugging Face language model as the teacher (causal or seq2seq).

Advice is the softmax of the `PrefixSharedScorer`'s action log-likelihoods. Learning moves that
distribution towards the student's improved policy (its own policy re-weighted by exp(signal)
from its critic) through a LoRA adapter on the top layers, kept near the original model by a KL
term (on every prompt alike, or weighed by how sure the original model is: `teacher_hold`).
"""

from __future__ import annotations

import contextlib

import warnings
from typing import Any, Sequence

import numpy as np
import torch

from mutualrl.config import TeacherConfig
from mutualrl.envs import Situation
from mutualrl.errors import MutualRLError
from mutualrl.feedback import PromptFeedback
from mutualrl.verdicts import kept_reading
from mutualrl.teachers.base import by_answers, softmax
from mutualrl.teachers.models import weight_dtype
from mutualrl.teachers.scoring import PrefixSharedScorer
from mutualrl.teachers.text import TextTeacher

#: the least probability an answer judged better than its prompt's others counts as (`improvement_targets`)
RECOVERABLE = 0.01
_LLAMA_LIKE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class HFTeacher(TextTeacher):
    """A local causal or seq2seq language model that scores the text actions and learns by LoRA."""

    def __init__(self, model, tokenizer, *, config: TeacherConfig | None = None, device: str = "cpu",
                 temperature: float = 1.0, seed: int = 0, name: str = "hf"):
        super().__init__(temperature)
        self.name = name
        self.config = config or TeacherConfig()
        self.device = torch.device(device)
        self.scorer = PrefixSharedScorer(model, tokenizer, device=self.device, lora_layers=self.config.lora_layers,
                                         dtype=weight_dtype(self.config.precision, self.device))
        self.optimizer: torch.optim.Optimizer | None = None
        self._rng = np.random.default_rng(seed)
        self._reference: dict[str, np.ndarray] = {}

    def score(self, situations: Sequence[Situation]) -> np.ndarray:
        with torch.no_grad():
            return self.scorer.logliks(situations).cpu().numpy()

    def score_each(self, situations: Sequence[Situation]) -> list[np.ndarray]:
        with torch.no_grad():
            return [row.cpu().numpy() for row in self.scorer.logliks_each(situations)]

    # ---------------------------------------------------------------- learning

    def _ensure_adapter(self) -> None:
        """Wrap the model with a LoRA adapter on its top `lora_layers` layers (once)."""
        if self.optimizer is not None:
            return
        from peft import LoraConfig, get_peft_model

        model, rank = self.scorer.model, self.config.lora_rank
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [t for t in _LLAMA_LIKE_TARGETS if t in names] or None
        layers = getattr(model.config, "num_hidden_layers", None)
        top = (list(range(max(0, layers - self.config.lora_layers), layers))
               if layers and not self.scorer.is_seq2seq else None)
        lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets, layers_to_transform=top)
        with warnings.catch_warnings():
            # peft's own code reads `model.is_gradient_checkpointing`, which transformers deprecates
            # (FutureWarning); nothing of ours calls it, so the user need not see it
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.scorer.model = get_peft_model(model, lora).eval()
        trainable = [p for p in self.scorer.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=self.config.lr)

    @contextlib.contextmanager
    def _original(self):
        """The original model for the reads within: the adapter off, once there is one (the
        headers cached with it forgotten before and after)."""
        if self.optimizer is None:
            yield
            return
        with self.scorer.model.disable_adapter():
            self.scorer.forget_adapted_headers()
            try:
                yield
            finally:
                self.scorer.forget_adapted_headers()

    def score_untaught(self, situations: Sequence[Situation]) -> list[np.ndarray]:
        """Scores of the original model."""
        with torch.no_grad(), self._original():
            return [row.cpu().numpy() for row in self.scorer.logliks_each(situations)]

    def reference_logprobs(self, situations: Sequence[Situation]) -> torch.Tensor:
        """Action log-probabilities of the original model (adapter off), remembered per prompt."""
        keys = [self.key(s) for s in situations]
        todo = [i for i, k in enumerate(keys) if k not in self._reference]
        if todo:
            with torch.no_grad(), self._original():
                scores = self.scorer.logliks([situations[i] for i in todo])
            for i, row in zip(todo, torch.log_softmax(scores, -1).cpu().numpy()):
                self._reference[keys[i]] = row
        return torch.tensor(np.stack([self._reference[k] for k in keys]), device=self.device)

    def update(self, feedback: Sequence[PromptFeedback]) -> dict[str, float]:
        """Move the advice towards the student's improved policy (`improvement_targets`), plus
        beta * KL to the original model. In a colour cloze the target keeps the untaught model's
        shares of colours and kinds (`verdicts.kept_reading`): whether the mission names a colour
        stays the language model's reading. Measured (`OpenDoorsOrderN4`, `mutual`, seed 0): kept
        at the teacher's own current shares instead, nothing pulled them back, and they ended at an
        extreme ("door" 0.39 -> 1.00 in one run, 0.46 -> 0.00 in another); read without a colour, a
        mission names any door (subgoal accuracy 0.87 -> 0.66, with the untaught shares 0.81)."""
        situations = [f.situation for f in feedback]
        targets = improvement_targets(feedback)
        # one action set per gradient step (prompts of subgoal advice offer different answers)
        members = by_answers(situations)
        sizes = np.array([len(m) for m in members], dtype=float)
        self._ensure_adapter()
        losses, kls = [], []
        for _ in range(self.config.update_steps):
            group = members[self._rng.choice(len(members), p=sizes / sizes.sum())]
            pick = self._rng.choice(group, size=min(self.config.batch_size, len(group)), replace=False)
            batch = [situations[i] for i in pick]
            reference = self.reference_logprobs(batch)  # only the prompts trained on: each read once, then remembered
            logp = torch.log_softmax(self.scorer.logliks(batch), dim=-1)
            untaught = reference.exp().cpu().numpy()
            target = torch.tensor(np.stack([kept_reading(situations[i], targets[i], u) for i, u in zip(pick, untaught)]),
                                  dtype=torch.float32, device=self.device)
            kl_each = (logp.exp() * (logp - reference)).sum(-1)
            held = kl_each if self.config.hold == "fixed" else sureness(reference) * kl_each
            loss = -(target * logp).sum(-1).mean() + self.config.kl_coef * held.mean()
            kl = kl_each.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            kls.append(kl.item())
        self.scorer.forget_adapted_headers()
        return {"teacher_loss": float(np.mean(losses)), "teacher_kl": float(np.mean(kls)),
                "teacher_feedback_prompts": len(situations)}

    # ------------------------------------------------------------- checkpoints

    def _lora_shape(self) -> dict[str, int]:
        return {"lora_rank": self.config.lora_rank, "lora_layers": self.config.lora_layers}

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "rng": self._rng.bit_generator.state}
        if self.optimizer is not None:
            from peft import get_peft_model_state_dict

            state["adapter"] = {k: v.cpu() for k, v in get_peft_model_state_dict(self.scorer.model).items()}
            state["optimizer"] = self.optimizer.state_dict()
            state["lora"] = self._lora_shape()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "rng" in state:
            self._rng.bit_generator.state = state["rng"]
        if "adapter" in state:
            from peft import set_peft_model_state_dict

            mine = self._lora_shape()
            theirs = state.get("lora", mine)
            if theirs != mine:
                shown = lambda d: ", ".join(f"{k}={v}" for k, v in d.items())  # noqa: E731
                raise MutualRLError(f"the saved teacher adapter has {shown(theirs)}; this teacher has {shown(mine)}")
            self._ensure_adapter()
            set_peft_model_state_dict(self.scorer.model, state["adapter"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scorer.forget_adapted_headers()


def improvement_targets(feedback: Sequence[PromptFeedback]) -> list[np.ndarray]:
    """Per prompt pi(a) * exp(S(a)): pi is the student's own policy, S how much better than the
    prompt's other answers the action did, in standard deviations of the feedback signal (advantage
    or TD error): its mean where the action was taken minus the prompt's mean over every step it
    was taken, 0 where it was not. Actions that did better than the prompt's others gain
    probability, worse ones lose it, as in one policy improvement step; the step per update is
    bounded and compounds over updates.

    Each answer is judged against the other answers of its own prompt, never against other
    prompts: records differ in mean by kind (the steps under a teacher's decisions against the
    acts hindsight records; a critic lagging a student that improves), so a baseline shared by
    all prompts pushes every taken answer of a kind one way. Measured: against the feedback's
    mean, "pick" 0.88 -> "go" 1.00 on `PickupLoc`; against 0 (no baseline), a teacher's own
    decisions on the go-to levels made it say "go" to pick-up missions next (0.11 right before
    `PickupLoc`, 0.89 untaught).

    An answer that did better than its prompt's others counts as at least `RECOVERABLE` likely,
    so that it can come back from a collapse: other prompts' updates move a prompt through the
    shared adapter, and measured (`PickupLoc` in words the verb cloze misreads, `mutual`, seed 0),
    they knocked a verb learnt right ("take a key": pick 1.00) down to 0.00 in two updates; its
    verdicts (pick 1, every other verb 0) then moved nothing, its probability times any bounded
    gain staying near 0, and the verb ended "open" 1.00 on every mission (subgoal accuracy as given
    0.966 -> 0.074)."""
    taken = np.concatenate([f.signal[~np.isnan(f.signal)] for f in feedback])
    scale = float(taken.std()) + 1e-8 if len(taken) > 1 else 1.0
    targets = []
    for f in feedback:
        baseline = f.signal_sum.sum() / max(f.counts.sum(), 1.0)
        gain = np.nan_to_num((f.signal - baseline) / scale)
        policy = np.where(gain > 0, np.maximum(f.policy, RECOVERABLE), np.clip(f.policy, 1e-6, None))
        targets.append(softmax(np.log(policy) + gain))
    return targets


def sureness(logprobs: torch.Tensor) -> torch.Tensor:
    """Per row of answer log-probabilities, how sure the answer is: 1 - its entropy over the
    largest an answer set of that size can have (1: one answer certain; 0: all alike). Weighing the
    KL hold by the untaught model's sureness keeps what it knows and frees what it guesses."""
    answers = logprobs.shape[-1]
    if answers < 2:
        return torch.ones(logprobs.shape[:-1], device=logprobs.device)
    probs = logprobs.exp()
    entropy = -torch.special.xlogy(probs, probs).sum(-1)
    return (1.0 - entropy / np.log(answers)).clamp(0.0, 1.0)
