"""The RL student: an actor-critic over the symbolic observation plus advice (trained by `ppo.py`).

The acting policy is a product of experts, softmax(student logits + advice_logits), where
`advice_logits` = weight * log(advice) on advised steps (zero elsewhere), so good advice steers
exploration from the first step; it is part of the policy's input, so PPO's ratios stay
on-policy. Its `distill_loss` towards the teacher's advice lets it also act well without a teacher.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from mutualrl.envs import MISSION_VOCAB, acts_with_effect
from mutualrl.subgoals import SUBGOAL_DIM, VERBS

#: where the verb lies in the subgoal input (after the 7x7 mask; `toward` follows it)
_VERB = slice(49, 49 + len(VERBS))

NUM_OBJECTS, NUM_COLORS, NUM_STATES = 11, 6, 3
_CARRIED_CELL = 3 * 7 + 6  # the agent's own cell (column 3, bottom row) in the flattened view
#: the logit of an act masked out (finite, so that entropies and log-probabilities stay defined)
_NO_EFFECT = -1e9
#: the memory's weights as an `nn.LSTMCell` named them, and as the one-layer `nn.LSTM` does
_LSTM_CELL_NAMES = {f"lstm.{w}": f"lstm.{w}_l0" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


class Student(nn.Module):
    """What every student architecture shares: the advice input, its own grounding head, actor and
    critic, and how it acts. A subclass reads the observation (`read`: cell embeddings and a
    mission vector) and turns it into features (`_trunk`).

    With `advice="action"` the advice input is a distribution over the task's text actions (all
    zeros when there is none), so a student trained alone and one trained with a teacher share
    one interface. With `advice="subgoal"` it is a subgoal's mask over the 7x7 view and its verb,
    and the mask also marks the view's cells (`mark_emb`); the student also has its own grounding
    head, trained only towards the teacher's subgoals (`distill_loss`), which fills the input, as
    a crisp subgoal of the same form, wherever the teacher's subgoal is not shown: acting alone,
    the student names its own subgoal and acts on it as on the teacher's.
    The input is gate * advice + (1 - gate) * own grounding, gate in [0, 1] per step.

    With `memory` > 0 an LSTM beside the heads carries what the student saw earlier in the
    episode (a memoryless greedy policy walks in circles where the target is out of view). Its
    state is one tensor (B, 2 * memory), hidden and cell state side by side; rows of a flat batch
    are in time order (step-major, as a rollout flattens), and `starts` marks the rows where an
    episode begins, whose state is reset to zero before the step.
    """

    #: the name checkpoints and the `student` config field record
    architecture = ""
    memory_size = 0
    #: "no-ops": acts the view shows would change nothing get no probability (`acts_with_effect`);
    #: a greedy policy can then never repeat one to the step limit (measured: the commonest way a
    #: greedy student failed on the door levels while sampling it succeeded)
    action_mask = "none"

    def _advice_parts(self, num_actions: int, advice: str, cell_dim: int, mission_dim: int,
                      query_cells: bool = False) -> None:
        self.num_actions = num_actions
        self.advice_kind = advice
        self.advice_dim = SUBGOAL_DIM if advice == "subgoal" else num_actions
        self.query_cells = query_cells
        if advice == "subgoal":  # per cell: does the mission (given what is carried) mean this object?
            if query_cells:  # a query and a threshold read from the context, dotted with each cell
                self.ground_query = nn.Linear(cell_dim + mission_dim, cell_dim + 1)
            else:  # an MLP over each cell and the context
                self.ground_cells = nn.Sequential(nn.Linear(2 * cell_dim + mission_dim, 32), nn.Tanh(),
                                                  nn.Linear(32, 1))
            self.ground_verb = nn.Sequential(nn.Linear(cell_dim + mission_dim, 32), nn.Tanh(), nn.Linear(32, len(VERBS)))
            # the subgoal's object is also marked in the view's cells, as its type and colour are: one
            # vector learnt from every position (measured: the mask as a flat input alone is learnt far slower)
            self.mark_emb = nn.Parameter(torch.randn(cell_dim))

    def _heads(self, hidden: int, num_actions: int, memory: int) -> None:
        self.actor = nn.Linear(hidden + memory, num_actions)
        self.critic = nn.Linear(hidden + memory, 1)
        nn.init.orthogonal_(self.actor.weight, 0.01)
        nn.init.zeros_(self.actor.bias)

    def _memory_part(self, hidden: int, memory: int) -> None:
        """Created last, so that a student without memory starts from the same weights as before it existed."""
        self.memory_size = memory
        if memory:
            self.lstm = nn.LSTM(hidden, memory)

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Also loads a student saved before its subgoal input grew (a verb, where the object lies):
        the old inputs and outputs keep their weights and the new ones start at zero (`grow_to`;
        every addition to the subgoal input and the verbs comes last); and a memory saved as an
        LSTM cell, whose weights the one-layer LSTM holds under other names."""
        own = super().state_dict()
        state = {_LSTM_CELL_NAMES.get(name, name): value for name, value in state.items()}
        grown = {name: grow_to(value, own[name]) if name in own else value for name, value in state.items()}
        return super().load_state_dict(grown, strict=strict, assign=assign)

    def initial_memory(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor | None:
        """The memory of `batch` fresh episodes (None for a student without memory)."""
        return torch.zeros(batch, 2 * self.memory_size, device=device) if self.memory_size else None

    def _recall(self, features: torch.Tensor, memory: torch.Tensor | None,
                starts: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the LSTM over a flat, step-major batch of sequences, resetting at episode starts: its
        outputs (T * B, memory), and after a single step (acting) the memory (B, 2 * memory); a
        longer batch's callers need only the outputs (None).

        A sequence is cut into its episodes, each run from its own initial state in one call of
        the fused LSTM (padded at the end, which a forward recurrence never reads back): on a CPU,
        stepping a cell in Python took half of the PPO update's time."""
        if memory is None:  # no state given: every row is a fresh episode
            memory = self.initial_memory(len(features), features.device)
        batch = len(memory)
        steps = len(features) // batch
        fresh = starts.view(steps, batch).bool() if starts is not None else features.new_ones(steps, batch, dtype=torch.bool)
        hidden, cell = (memory * ~fresh[0, :, None]).chunk(2, -1)
        if steps == 1:
            output, (hidden, cell) = self.lstm(features[None], (hidden[None].contiguous(), cell[None].contiguous()))
            return output[0], torch.cat([hidden[0], cell[0]], -1)
        # the rows in copy-major order, cut into episodes: each copy's first row, and every row where one begins
        rows = torch.arange(steps * batch, device=features.device)
        by_copy = rows.view(steps, batch).T.flatten()  # copy-major position -> step-major row
        begins = fresh.T.clone()
        begins[:, 0] = True
        episode = begins.flatten().cumsum(0) - 1  # per copy-major position: its episode's index
        first = begins.flatten().nonzero().squeeze(1)  # each episode's first position
        count, within = len(first), rows - first[episode]  # and each position's step within its episode
        padded = features.new_zeros(int(within.max()) + 1, count, features.shape[-1])
        slot = within * count + episode
        padded = padded.view(-1, features.shape[-1]).index_copy(0, slot, features[by_copy]).view_as(padded)
        initial = hidden.new_zeros(2, count, hidden.shape[-1])  # zero, but for each copy's first episode: its memory
        carried = episode[rows[::steps]]
        initial[0, carried], initial[1, carried] = hidden, cell
        output, _ = self.lstm(padded, (initial[:1], initial[1:]))
        in_copy_order = output.reshape(-1, output.shape[-1])[slot]
        return in_copy_order[rows.view(batch, steps).T.flatten()], None

    def _cells(self, image: torch.Tensor) -> torch.Tensor:
        """Cell embeddings (B, 7, 7, cell_dim): the sum of each cell's object, colour and state vectors,
        as one product of the cells' one-hot codes with the three tables stacked (on a CPU the
        backward of three lookups per cell took more time than the convolutions)."""
        image = image.long()
        codes = torch.stack([image[..., 0].clamp(max=NUM_OBJECTS - 1),
                             image[..., 1].clamp(max=NUM_COLORS - 1) + NUM_OBJECTS,
                             image[..., 2].clamp(max=NUM_STATES - 1) + NUM_OBJECTS + NUM_COLORS], -1)
        table = torch.cat([self.object_emb.weight, self.color_emb.weight, self.state_emb.weight])
        one_hot = table.new_zeros(*codes.shape[:-1], len(table)).scatter_(-1, codes, 1.0)
        return one_hot @ table

    def read(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell embeddings (B, 7, 7, cell_dim) and the mission as one vector (B, mission_dim)."""
        raise NotImplementedError

    def _trunk(self, cells: torch.Tensor, direction: torch.Tensor, mission: torch.Tensor,
               advice: torch.Tensor) -> torch.Tensor:
        """Features (B, hidden) of the view, direction, mission and the advice input."""
        raise NotImplementedError

    def grounding(self, cells: torch.Tensor, mission: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's own subgoal as logits: per cell of the view (B, 49) and per verb (B, V)."""
        flat = cells.flatten(1, 2)  # (B, 49, cell_dim), the view's cells in the mask's order
        held = flat[:, _CARRIED_CELL]
        context = torch.cat([mission, held], -1)
        if self.query_cells:
            query, threshold = self.ground_query(context).split([flat.shape[-1], 1], -1)
            return (flat * query[:, None]).sum(-1) + threshold, self.ground_verb(context)
        per_cell = torch.cat([flat, context[:, None].expand(-1, flat.shape[1], -1)], -1)
        return self.ground_cells(per_cell).squeeze(-1), self.ground_verb(context)

    def own_subgoal(self, cells: torch.Tensor, mission: torch.Tensor) -> torch.Tensor:
        """The student's own grounding as a subgoal it could be shown, in the teacher's form: the
        object it points at (every cell holding what its likeliest cell holds; none where none is
        likelier), and its verb."""
        mask_logits, verb_logits = self.grounding(cells, mission)
        flat = cells.flatten(1, 2)
        best, pointed = mask_logits.max(-1)
        mask = (flat == flat[torch.arange(len(flat), device=flat.device), pointed][:, None]).all(-1) & (best[:, None] > 0)
        mask[:, _CARRIED_CELL] = False  # what the agent carries is not in view (as `subgoals.object_mask`)
        verb = nn.functional.one_hot(verb_logits.argmax(-1), len(VERBS)).float()
        return torch.cat([mask.float(), verb, verb.new_zeros(len(verb), SUBGOAL_DIM - _VERB.stop)], -1)

    def features(self, obs: dict[str, torch.Tensor], advice: torch.Tensor, gate: torch.Tensor | None = None,
                 memory: torch.Tensor | None = None, starts: torch.Tensor | None = None,
                 read: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features for the heads, and the memory after a single step (None without memory, or for a sequence).
        `read`: the observation as `read(obs)` gives it, where the caller needs it too."""
        cells, mission = read if read is not None else self.read(obs)
        if gate is not None:
            advice = gate[:, None] * advice
            rows = (gate < 1).nonzero().squeeze(1)
            if self.advice_kind == "subgoal" and len(rows):  # where not all shown, the student's own grounding
                with torch.no_grad():
                    own = self.own_subgoal(cells[rows], mission[rows])
                advice = advice.index_add(0, rows, (1 - gate[rows, None]) * own)
        if self.advice_kind == "subgoal":
            cells = cells + advice[:, :49].view(-1, 7, 7, 1) * self.mark_emb
        features = self._trunk(cells, obs["direction"].long(), mission, advice)
        if not self.memory_size:
            return features, None
        recalled, memory = self._recall(features, memory, starts)  # the heads see both: what is in view, and what
        return torch.cat([features, recalled], -1), memory  # was (a feed-forward policy works from the start)

    def forward(self, obs: dict[str, torch.Tensor], advice: torch.Tensor, gate: torch.Tensor | None = None,
                memory: torch.Tensor | None = None, starts: torch.Tensor | None = None,
                read: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Action logits, state values and the memory after a single step (`gate=None`: the advice as given)."""
        h, memory = self.features(obs, advice, gate, memory, starts, read)
        logits = self.actor(h)
        if self.action_mask == "no-ops":
            logits = logits.masked_fill(~acts_with_effect(obs["image"], logits.shape[-1]), _NO_EFFECT)
        return logits, self.critic(h).squeeze(-1), memory

    def act(self, obs, advice, advice_logits: torch.Tensor | None = None, *, gate: torch.Tensor | None = None,
            memory: torch.Tensor | None = None, starts: torch.Tensor | None = None, greedy: bool = False) -> "Step":
        """One step of every copy: sampled (or greedy) actions of softmax(logits + advice_logits)."""
        logits, value, memory = self(obs, advice, gate, memory, starts)
        if advice_logits is not None:
            logits = logits + advice_logits
        dist = Categorical(logits=logits)
        action = logits.argmax(-1) if greedy else dist.sample()
        return Step(action, dist.log_prob(action), value, dist.entropy(), memory)

    def alone(self, obs: dict[str, torch.Tensor], memory: torch.Tensor | None = None,
              starts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits, values and memory without a teacher: no action advice, the student's own subgoal."""
        rows = obs["direction"].shape[0]
        device = obs["direction"].device
        return self(obs, torch.zeros(rows, self.advice_dim, device=device), torch.zeros(rows, device=device),
                    memory, starts)

    def own_policy(self, obs: dict[str, torch.Tensor], memory: torch.Tensor | None = None,
                   starts: torch.Tensor | None = None) -> torch.Tensor:
        """The student's action distribution without advice (no gradient): what it would do alone."""
        with torch.no_grad():
            logits, _, _ = self.alone(obs, memory, starts)
        return torch.softmax(logits, -1)

    def distill_loss(self, read: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor,
                     logits: torch.Tensor) -> torch.Tensor:
        """Per-sample loss towards the teacher's advice: CE(advice || own action logits), or for
        subgoals, the grounding head's cross-entropy to the subgoal's object and verb (from the
        observation as `read` gives it, shared with the forward pass).

        The object is a pointer: one choice among the view's cells and "none" (a fixed logit 0),
        the subgoal's cells sharing the target (`own_subgoal` names the likeliest cell's object).
        Measured on `GoToLocal` guided by the bot: with a cross-entropy per cell, one marked cell
        among 49 (averaged over the cells) left the marked cell below the threshold for long (the
        student's own mask empty in 0.43-0.88 of the states where the bot marked an object, after
        10k-60k frames); summed over the cells, its gradient was three times the policy's on
        `PickupLoc`, so clipping to `max_grad_norm` shrank the policy's step to a sixth."""
        if self.advice_kind == "action":
            if self.action_mask == "no-ops":  # (advice on an act masked out is dropped: no act of the student's)
                target = target * (logits > _NO_EFFECT / 2)
                target = target / target.sum(-1, keepdim=True).clamp_min(1e-8)
            return -(target * torch.log_softmax(logits, dim=-1)).sum(-1)
        mask_logits, verb_logits = self.grounding(*read)
        mask = target[:, :49]
        aim = torch.cat([mask, (mask.sum(-1, keepdim=True) == 0).float()], -1)
        choice = torch.cat([mask_logits, mask_logits.new_zeros(len(mask_logits), 1)], -1)
        pointer = -(aim / aim.sum(-1, keepdim=True) * torch.log_softmax(choice, -1)).sum(-1)
        return pointer - (target[:, _VERB] * torch.log_softmax(verb_logits, -1)).sum(-1)


class Step(NamedTuple):
    """What the student did at one step of every copy."""

    action: torch.Tensor
    logprob: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor  # of the acting policy: how unsure the student is
    memory: torch.Tensor | None  # after the step


class ActorCritic(Student):
    """The small student: the mission as the mean of its word vectors (a bag of words), and a
    two-layer MLP over the flattened view, direction, mission and advice."""

    architecture = "mlp"

    def __init__(self, num_actions: int, hidden: int = 64, cell_dim: int = 8, advice: str = "action",
                 memory: int = 0):
        super().__init__()
        self.object_emb = nn.Embedding(NUM_OBJECTS, cell_dim)
        self.color_emb = nn.Embedding(NUM_COLORS, cell_dim)
        self.state_emb = nn.Embedding(NUM_STATES, cell_dim)
        self.direction_emb = nn.Embedding(4, 8)
        self.word_emb = nn.Embedding(len(MISSION_VOCAB) + 1, 16, padding_idx=len(MISSION_VOCAB))
        features = 7 * 7 * cell_dim + 8 + 16 + (SUBGOAL_DIM if advice == "subgoal" else num_actions)
        self.trunk = nn.Sequential(
            nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self._heads(hidden, num_actions, memory)  # (modules in this order: the initial weights of a seed stay as they were)
        self._advice_parts(num_actions, advice, cell_dim, mission_dim=16)
        self._memory_part(hidden, memory)

    def read(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        words = obs["mission"]  # word ids, -1 = padding
        present = (words >= 0).float().sum(1, keepdim=True).clamp(min=1)
        mission = self.word_emb(words.masked_fill(words < 0, len(MISSION_VOCAB))).sum(1) / present
        return self._cells(obs["image"]), mission

    def _trunk(self, cells, direction, mission, advice):
        return self.trunk(torch.cat([cells.flatten(1), self.direction_emb(direction), mission, advice], dim=1))


def grow_to(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`value` in the front of a zero tensor shaped as `like`, where it is smaller in some
    dimension and larger in none (a weight saved before an input grew); else `value` itself."""
    if value.dim() != like.dim() or value.shape == like.shape or any(a > b for a, b in zip(value.shape, like.shape)):
        return value
    padded = torch.zeros_like(like)
    padded[tuple(slice(0, n) for n in value.shape)] = value
    return padded


def distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of a 2-D integer tensor and, per row, the index of its distinct row (as
    `torch.unique(dim=0, return_inverse=True)`, which on a CPU took as long as the reading it saved)."""
    values = np.ascontiguousarray(rows.cpu().numpy())
    as_items = values.view(np.dtype((np.void, values.dtype.itemsize * values.shape[1]))).ravel()
    _, first, inverse = np.unique(as_items, return_index=True, return_inverse=True)
    return rows[torch.as_tensor(first, device=rows.device)], torch.as_tensor(inverse.ravel(), device=rows.device)
