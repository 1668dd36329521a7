"""Environments and their text: vectorised MiniGrid/BabyAI, `describe(obs)`, text actions.

The student sees the symbolic observation; the teacher sees the same state through
`describe`, as a few short English sentences. Both act in the same text-action space.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI environments)
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.envs.babyai.core.verifier import GoToInstr

from mutualrl import output
from mutualrl.errors import MutualRLError

#: Text actions in MiniGrid's action order: index i is `minigrid.core.actions.Actions(i)`.
ACTION_TEXTS: tuple[str, ...] = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
NAVIGATION_ACTIONS = ACTION_TEXTS[:3]
ACTION_QUESTION = "Which action should the agent take now?"
#: All seven MiniGrid actions, `done` included: what a generic RL library's user acts in.
FULL_ACTIONS: tuple[str, ...] = ACTION_TEXTS + ("done",)

#: How many layouts of a level are sampled to learn which actions it needs (`task_actions`).
_LAYOUTS_SAMPLED = 8

#: The agent's cell in MiniGrid's egocentric 7x7 view (column 3, bottom row); it faces up.
_AGENT_COL, _AGENT_ROW = 3, 6

#: Words of the BabyAI mission grammar; any other word maps to the unknown token 0.
MISSION_VOCAB: tuple[str, ...] = (
    "<unk>", "go", "to", "the", "a", "pick", "up", "put", "next", "open", "door", "ball", "box",
    "key", "red", "green", "blue", "purple", "yellow", "grey", "and", "then", "after", "you",
    "on", "your", "left", "right", "in", "front", "of", "behind", "get", "goal", "square",
    "reach", "avoid", "lava", "use", "it", "object", "match", "same", "color", "as",
)
MISSION_MAX_WORDS = 16
_WORD_TO_ID = {word: i for i, word in enumerate(MISSION_VOCAB)}


def registered_env_ids() -> list[str]:
    """All MiniGrid and BabyAI environment ids known to Gymnasium."""
    return sorted(k for k in gym.envs.registry if k.startswith(("MiniGrid-", "BabyAI-")))


def check_env_id(env_id: str) -> None:
    """Fail with one line naming `env_id` and the closest registered ids."""
    ids = registered_env_ids()
    if env_id in ids:
        return
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `mutualrl envs` for the list"
    raise MutualRLError(f"unknown environment {env_id!r}{hint}")


def task_actions(env_id: str, action_space: str = "task") -> tuple[str, ...]:
    """The text actions a student acts in: `task` is what the level needs (`level_needs`), `full`
    all seven MiniGrid actions (what a user of a generic RL library gets)."""
    if action_space == "full":
        return FULL_ACTIONS
    return level_needs(env_id)


@functools.lru_cache(maxsize=256)
def _layouts(env_id: str) -> tuple[bool, bool, bool, bool]:
    """What a level places and asks in a few sampled layouts: a closed door, something that can be
    carried, (for a BabyAI level) only missions to go somewhere, and a locked door."""
    check_env_id(env_id)
    env = QuietReset(gym.make(env_id))
    goes_only, closed_door, carriable, locked_door = True, False, False, False
    for seed in range(_LAYOUTS_SAMPLED):
        built(env_id, lambda: env.reset(seed=seed))
        level = env.unwrapped
        cells = [cell for cell in level.grid.grid if cell is not None]
        kinds = {(cell.type, bool(getattr(cell, "is_open", False))) for cell in cells}
        closed_door |= ("door", False) in kinds
        locked_door |= any(getattr(cell, "is_locked", False) for cell in cells)
        carriable |= any(kind in ("key", "ball", "box") for kind, _ in kinds)
        goes_only &= _goes_only(getattr(level, "instrs", None))
    env.close()
    return closed_door, carriable, goes_only, locked_door


def level_needs(env_id: str) -> tuple[str, ...]:
    """The actions a level needs, read from what it places and asks in a few sampled layouts.

    Only moving about (the three navigation actions, which keeps exploration and the teacher's
    choice three-way) where no layout has a closed door and, for a BabyAI level, every mission is
    to go somewhere, or, for a plain MiniGrid level, nothing can be carried. Else a BabyAI level
    gets the six actions but `done` (which no BabyAI mission needs; doors may hide keys and
    blockers that must be carried away), and a plain MiniGrid level all seven (some, such as
    GoToDoor, end on `done`). Each prefix of `FULL_ACTIONS`, so a checkpoint's policy size names
    its action space."""
    closed_door, carriable, goes_only, _ = _layouts(env_id)
    babyai = env_id.startswith("BabyAI-")
    if not closed_door and (goes_only if babyai else not carriable):
        return NAVIGATION_ACTIONS
    return ACTION_TEXTS if babyai else FULL_ACTIONS


def _kinds(*names: str) -> torch.Tensor:
    return torch.tensor([OBJECT_TO_IDX[name] for name in names])


#: what the agent can walk onto (a door too, where open; the unseen: not known to block), and lift
_PASSABLE, _LIFTABLE = _kinds("unseen", "empty", "floor", "goal", "lava"), _kinds("key", "ball", "box")
_EMPTY, _DOOR, _KEY, _BOX = (OBJECT_TO_IDX[name] for name in ("empty", "door", "key", "box"))


def acts_with_effect(image: torch.Tensor, num_actions: int) -> torch.Tensor:
    """(B, num_actions) bool: which of the first `num_actions` MiniGrid actions change anything,
    read from the egocentric views (B, 7, 7, 3) as MiniGrid's `step` decides it: turning always; going
    forward onto an empty, floor, goal or lava cell or an open door; picking up a key, ball or box
    with empty hands; dropping onto an empty cell; toggling a box, an unlocked door, or a locked
    door while carrying its key; `done` always (it ends some levels)."""
    image = image.long()
    front, own = image[:, _AGENT_COL, _AGENT_ROW - 1], image[:, _AGENT_COL, _AGENT_ROW]
    kind, colour, state = front[:, 0], front[:, 1], front[:, 2]
    carrying = torch.isin(own[:, 0], _LIFTABLE)
    door = kind == _DOOR
    passable = torch.isin(kind, _PASSABLE) | (door & (state == STATE_TO_IDX["open"]))
    has_its_key = (own[:, 0] == _KEY) & (own[:, 1] == colour)
    toggles = (kind == _BOX) | (door & ((state != STATE_TO_IDX["locked"]) | has_its_key))
    always = torch.ones_like(door)
    effects = (always, always, passable, torch.isin(kind, _LIFTABLE) & ~carrying, carrying & (kind == _EMPTY),
               toggles, always)
    return torch.stack(effects[:num_actions], -1)


def has_locked_doors(env_id: str) -> bool:
    """Whether a level places locked doors (in a few sampled layouts): its next step depends on the
    state (the key first, then the door)."""
    return _layouts(env_id)[3]


def instruction_parts(instr: Any) -> list[Any]:
    """Every part of a BabyAI instruction: itself, the parts of a sequence, and their parts."""
    found, parts = [], [instr]
    while parts:
        part = parts.pop()
        found.append(part)
        parts += [getattr(part, name) for name in ("instr_a", "instr_b") if hasattr(part, name)]
    return found


def _goes_only(instr: Any) -> bool:
    """Whether a BabyAI instruction (and each part of a sequence) only asks to go somewhere."""
    return instr is None or all(isinstance(part, GoToInstr) for part in instruction_parts(instr)
                                if not hasattr(part, "instr_a"))


def make_env(env_id: str, num_envs: int, seed: int) -> SyncVectorEnv:
    """`num_envs` copies of `env_id`, auto-resetting in the same step (final obs in `info`).

    Seeding: copy i starts from seed `seed + i`; later episodes follow each copy's own RNG.
    """
    check_env_id(env_id)
    if num_envs < 1:
        raise MutualRLError(f"num_envs must be >= 1, got {num_envs}")
    envs = SyncVectorEnv(
        [_env_factory(env_id) for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    built(env_id, lambda: envs.reset(seed=seed))
    return envs


def built(env_id: str, reset: Callable[[], Any]) -> Any:
    """`reset()`, or one line saying why the level cannot be laid out here (the WFC levels, for one,
    need pattern files that MiniGrid's wheel does not ship)."""
    try:
        return reset()
    except Exception as err:  # a level's own generator: anything it raises means the same to the user
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MutualRLError(f"level {env_id!r} cannot be laid out here: {reason}") from None


class QuietReset(gym.Wrapper):
    """Swallows what a level prints while it samples a mission (BabyAI prints "Sampling rejected:
    unreachable object" for every rejected layout), unless the output is verbose."""

    def reset(self, **kwargs):
        if output.verbose():
            return self.env.reset(**kwargs)
        with contextlib.redirect_stdout(io.StringIO()):
            return self.env.reset(**kwargs)


def _env_factory(env_id: str) -> Callable[[], gym.Env]:
    return lambda: QuietReset(gym.make(env_id))


@functools.lru_cache(maxsize=4096)
def encode_mission(mission: str) -> np.ndarray:
    """Word ids of a mission, padded with -1 to `MISSION_MAX_WORDS` (cached: do not modify)."""
    words = mission.lower().replace(",", " ").split()[:MISSION_MAX_WORDS]
    ids = np.full(MISSION_MAX_WORDS, -1, dtype=np.int64)
    ids[: len(words)] = [_WORD_TO_ID.get(w, 0) for w in words]
    ids.flags.writeable = False
    return ids


def obs_to_tensors(obs: dict, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The symbolic part of a (vectorised) MiniGrid observation as tensors."""
    missions = np.stack([encode_mission(m) for m in obs["mission"]])
    return {
        "image": torch.as_tensor(np.asarray(obs["image"]), device=device),
        "direction": torch.as_tensor(np.asarray(obs["direction"]), device=device),
        "mission": torch.as_tensor(missions, device=device),
    }


# ---------------------------------------------------------------------------------- text


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _relative_position(col: int, row: int) -> str:
    """'2 steps left and 3 steps forward' for a cell of the egocentric view."""
    lateral, forward = col - _AGENT_COL, _AGENT_ROW - row
    parts = []
    if lateral:
        parts.append(f"{_steps(abs(lateral))} {'left' if lateral < 0 else 'right'}")
    if forward or not parts:
        parts.append(f"{_steps(forward)} forward")
    return " and ".join(parts)


def object_name(obj: tuple[int, int]) -> str:
    """'a red ball' for a (type index, colour index) pair."""
    return f"a {IDX_TO_COLOR[obj[1]]} {IDX_TO_OBJECT[obj[0]]}"


def _object_name(cell: np.ndarray) -> str:
    kind = IDX_TO_OBJECT[int(cell[0])]
    if kind in ("goal", "lava", "wall"):
        return {"goal": "the green goal square", "lava": "lava", "wall": "a wall"}[kind]
    if kind == "door":
        state = {v: k for k, v in STATE_TO_IDX.items()}[int(cell[2])]
        return f"a {state} {IDX_TO_COLOR[int(cell[1])]} door"
    return object_name((int(cell[0]), int(cell[1])))


def _blocks_way(cell: np.ndarray) -> bool:
    kind = IDX_TO_OBJECT[int(cell[0])]
    return kind == "wall" or (kind == "door" and int(cell[2]) != STATE_TO_IDX["open"])


def describe(obs: dict[str, Any]) -> str:
    """Render an egocentric MiniGrid observation as short English sentences.

    Says each visible object (colour, steps left/right and forward), the wall or closed
    door straight ahead and its distance, and what the agent carries.
    """
    image = np.asarray(obs["image"])
    sentences = []
    for row in range(_AGENT_ROW, -1, -1):  # nearest rows first
        for col in range(image.shape[0]):
            kind = IDX_TO_OBJECT[int(image[col, row, 0])]
            if (col, row) == (_AGENT_COL, _AGENT_ROW) or kind in ("unseen", "empty", "wall", "floor"):
                continue
            sentences.append(f"You see {_object_name(image[col, row])} {_relative_position(col, row)}.")
    if not sentences:
        sentences.append("You see no objects.")
    for row in range(_AGENT_ROW - 1, -1, -1):
        cell = image[_AGENT_COL, row]
        if IDX_TO_OBJECT[int(cell[0])] == "unseen":
            break
        if _blocks_way(cell):
            distance = _AGENT_ROW - row
            where = "right in front of you" if distance == 1 else f"{_steps(distance)} ahead"
            name = _object_name(cell)
            sentences.append(f"{name[0].upper()}{name[1:]} is {where}.")
            break
    carried = image[_AGENT_COL, _AGENT_ROW]
    if IDX_TO_OBJECT[int(carried[0])] not in ("unseen", "empty"):
        sentences.append(f"You carry {_object_name(carried)}.")
    return " ".join(sentences)


@dataclass(frozen=True)
class Situation:
    """What a teacher is asked about: one environment's state as text, and nothing else.

    A privileged teacher (the BabyAI bot) gets the live environments through `advise(..., envs=)`,
    never through a situation, so situations can be kept, pickled and compared as plain text."""

    mission: str
    description: str
    actions: tuple[str, ...]
    last_action: str | None = None
    #: what the teacher is asked to choose among `actions` (subgoal prompts ask another question)
    question: str = ACTION_QUESTION
    #: a cloze about the mission alone: `description` is then the start of the teacher's answer,
    #: which one of `actions` (one word each) completes
    cloze: bool = False
    #: read once by the untaught teacher and kept for the run: a question whose answers feedback
    #: never judges (the mission read the other way round, `channel`), so no version re-reads it
    untaught: bool = False


def situations(obs: dict[str, Any], actions: tuple[str, ...], last_actions: Sequence[str | None]) -> list[Situation]:
    """One `Situation` per environment copy of a vectorised observation batch."""
    return [
        Situation(mission=mission, description=describe({"image": image}), actions=actions, last_action=last)
        for mission, image, last in zip(obs["mission"], obs["image"], last_actions)
    ]


def unwrapped_envs(envs: SyncVectorEnv) -> list[Any]:
    """The live environments of a vector env, for privileged teachers."""
    return [env.unwrapped for env in envs.envs]
