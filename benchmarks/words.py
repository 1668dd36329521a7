"""Missions in other words, for the benchmarks that measure whether the teacher depends on the
templates' words: verbs, prepositions and phrasing no BabyAI template uses. "reworded" took part
in choosing the grounding design and the questions; "held-out" never did (it only measures).
"misread" is a design set of verbs the kept verb question reads wrong ("take the box" read as going
to it), for designing a better one without looking at "held-out".
Registered as levels of their own (`register`), every part of a run reads them: the student, the
teacher, and the evaluations (the BabyAI bot plans on the instruction, not the words)."""

from __future__ import annotations

import re
from typing import Callable

import gymnasium as gym

REWORDINGS = {
    "reworded": ((r"^go to ", "walk over to "), (r"^pick up ", "grab "), (r"^put ", "place "), (r" next to ", " beside "),
                 (r"^open ", "unlock and open "), (r" in front of you", " ahead of you"), (r" behind you", " at your back")),
    "paraphrased": ((r"^go to ", "make your way to "), (r"^pick up ", "collect "), (r"^put ", "bring "), (r" next to ", " near "),
                    (r"^open (.*)$", r"pull \1 open"), (r" in front of you", " facing you"), (r" behind you", " at the back")),
    "held-out": ((r"^go to ", "head for "), (r"^pick up ", "fetch "), (r"^put ", "move "), (r" next to ", " close to "),
                 (r"^open (.*)$", r"get \1 open"), (r" in front of you", " before you"), (r" behind you", " to your rear")),
    "misread": ((r"^go to ", "approach "), (r"^pick up ", "take "), (r"^put ", "leave "), (r" next to ", " alongside "),
                (r"^open (.*)$", r"swing \1 open"), (r" in front of you", " in front"), (r" behind you", " behind")),
}


#: what joins the parts of a BabyAI mission ("open the red door, then open the blue door")
PART_JOINS = re.compile(r"(, then | and | after you )")


def rewording(words: str) -> Callable[[str], str]:
    """The mission as `words` (a key of `REWORDINGS`) says it, each of its parts reworded (a
    pattern anchored at the start of a mission then meets every part's verb, and "get the red door
    open" is not made of "open the red door, then open the blue door" as a whole)."""
    def reword_part(part: str) -> str:
        for pattern, replacement in REWORDINGS[words]:
            part = re.sub(pattern, replacement, part)
        return part

    def reword(mission: str) -> str:
        return "".join(piece if PART_JOINS.fullmatch(piece) else reword_part(piece) for piece in PART_JOINS.split(mission))

    return reword


class _Worded(gym.ObservationWrapper):
    def __init__(self, env: gym.Env, words: str):
        super().__init__(env)
        self.reword = rewording(words)

    def observation(self, observation):
        return {**observation, "mission": self.reword(observation["mission"])}


def register(env_id: str, words: str = "held-out") -> str:
    """A level id whose missions read in `words` ("BabyAI-PickupLoc-v0" -> "BabyAI-PickupLocHeldOut-v0")."""
    name, version = env_id.rsplit("-v", 1)
    worded = f"{name}{''.join(part.title() for part in words.split('-'))}-v{version}"
    if worded not in gym.registry:
        gym.register(worded, entry_point=lambda **kwargs: _Worded(gym.make(env_id, **kwargs), words))
    return worded
