"""The teacher's answers to a mission's clozes (`grounding`) read as distributions: over the verb
words, over every object name per role (p(colour) * p(kind | colour)), and over the places a
mission may give its object (`locations`). Each switch of how they are read is `design.Design`'s;
`choice` turns a reading into a subgoal in view."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from minigrid.core.constants import IDX_TO_OBJECT, OBJECT_TO_IDX

from mutualrl import channel, design, locations
from mutualrl.envs import Situation
from mutualrl.grounding import CONTENT_FREE, ROLES, meaning, verb_words
from mutualrl.subgoals import COLOURS, KINDS, Obj

#: the weight of a put mission that names one object twice, against 1 for two objects (`apart`)
SAME_NAME = 0.01


class Reading:
    """A teacher's answers to a mission's clozes as distributions: over verb words, and over
    every object name per role (p(colour) * p(kind | colour))."""

    def __init__(self, questions: Sequence[Situation], probs: Sequence[np.ndarray], actions: Sequence[str]):
        said = {channel.about(q): float(p[0]) for q, p in zip(questions, probs) if channel.is_channel(q)}
        asked = [(q, p) for q, p in zip(questions, probs) if not channel.is_channel(q)]
        answers = {meaning(q): p for q, p in asked if q.mission != CONTENT_FREE and not q.untaught}
        own_untaught = {meaning(q): p for q, p in asked if q.mission != CONTENT_FREE and q.untaught}
        free = {meaning(q): p for q, p in asked if q.mission == CONTENT_FREE and not q.untaught}
        untaught = {meaning(q): p for q, p in asked if q.mission == CONTENT_FREE and q.untaught}
        dist = {k: _against_free(k, p, free.get(k), untaught.get(k), own_untaught.get(k)) for k, p in answers.items()}
        habit = untaught if design.DESIGN.habit else {}
        words = verb_words(actions)
        direct = dist.get(("verb", None, None), np.ones(len(words)))
        verbs = _likelihoods(said, "verb", None, words)
        if len(words) > 1 and verbs is not None:
            direct = channel.combined(direct, verbs, design.DESIGN.channel_weight)
        self.verbs = dict(zip(words, direct))
        self.places = {w: p for w in words if (p := locations.place_probs(said, w, design.DESIGN.location_prior)) is not None}
        self.names: dict[str, np.ndarray] = {}  # role -> (colours, kinds)
        for role in ROLES:
            if (role, "colour", None) in dist:
                self.names[role] = names(dist[(role, "colour", None)], [dist[(role, "kind", c)] for c in COLOURS],
                                         habit.get((role, "colour", None)))
                colours, kinds = _likelihoods(said, role, "colour", COLOURS), _likelihoods(said, role, "kind", KINDS)
                if colours is not None:  # (a door's colour is read alone: its kind is a door's)
                    self.names[role] = channel.combined(self.names[role], channel.names(colours, kinds or [1.0] * len(KINDS)),
                                                        design.DESIGN.channel_weight)
        if design.DESIGN.apart and "move" in self.names and "fixed" in self.names:
            self.names["move"], self.names["fixed"] = apart(self.names["move"], self.names["fixed"])

    def p(self, role: str, obj: Obj) -> float:
        return float(self.names[role][_cell(obj)])

    def at(self, word: str, places: frozenset[str]) -> float:
        """How likely the object a verb word needs lies at one of `places` (`locations`): the
        mission placing it nowhere or there (1 where no place was read)."""
        p = self.places.get(word)
        return 1.0 if p is None else float(p[-1] + sum(q for q, place in zip(p, locations.PLACES) if place in places))

    def at_unseen(self, word: str) -> float:
        """`at` for an object out of view, whose places are not known: half of them, as an object's
        two places are (ahead or behind, left or right)."""
        p = self.places.get(word)
        return 1.0 if p is None else float(p[-1] + 0.5 * (1.0 - p[-1]))

    def best_unseen(self, role: str, seen: Sequence[Obj]) -> float:
        """The probability of the likeliest name of the role that no visible object bears."""
        return self.p(role, self.likeliest_unseen(role, seen))

    def likeliest_unseen(self, role: str, seen: Sequence[Obj]) -> Obj:
        """The likeliest name of the role that none of `seen` bears, as an object."""
        names = self.names[role].copy()
        for obj in seen:
            names[_cell(obj)] = -1.0
        colour, kind = np.unravel_index(int(np.argmax(names)), names.shape)
        return OBJECT_TO_IDX[KINDS[kind]], int(colour)


#: the readings of answers a teacher shares, by the questions and those answers' identity (`read`)
_READINGS: dict[tuple, tuple[Reading, tuple[np.ndarray, ...]]] = {}
_READINGS_KEPT = 4096


def read(questions: Sequence[Situation], probs: Sequence[np.ndarray], actions: Sequence[str]) -> Reading:
    """`Reading(questions, probs, actions)`, read once while the same answers are asked again. A
    teacher serves each prompt's answers at a version as one read-only array to every ask
    (`TextTeacher`), so on a door level most decisions meet questions already read at this
    version, and a reading cost about 2 ms of each (a profile of `BlockedUnlockPickup`). Answers
    that may change (writable arrays) are read every time."""
    if not all(isinstance(p, np.ndarray) and not p.flags.writeable for p in probs):
        return Reading(questions, probs, actions)
    key = (design.DESIGN, tuple(actions), tuple(questions), tuple(id(p) for p in probs))
    kept = _READINGS.get(key)
    if kept is None:
        if len(_READINGS) >= _READINGS_KEPT:
            _READINGS.clear()
        kept = _READINGS[key] = Reading(questions, probs, actions), tuple(probs)  # (the arrays kept: their ids stay theirs)
    return kept[0]


def _likelihoods(said: dict[tuple, float], role: str, part: str | None, values: Sequence[str]) -> list[float] | None:
    """The channel's likelihoods of a role's part (a verb word, a colour or a kind) per value, or
    None where it was not asked about every value."""
    keys = [(role, part, v) for v in values]
    return [said[k] for k in keys] if all(k in said for k in keys) else None


def names(colour: np.ndarray, kinds: Sequence[np.ndarray], habit: np.ndarray | None = None) -> np.ndarray:
    """A role's read of every object name, (colours, kinds): p(colour) * p(kind | colour), from the
    colour cloze's answers and the kind cloze's after each colour (`habit`: the colour cloze's
    answers for a content-free mission, `Design.habit`)."""
    return _colours(colour, habit)[:, None] * np.stack(kinds)


def apart(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two roles' reads of names as the marginals of their joint read where a pair that names one
    object twice weighs `SAME_NAME`: p(a) (1 - (1 - SAME_NAME) q(a)) and the same for the second,
    each normalised (`Design.apart`). Where both are sure of one name (the bot's answers), that
    name stays."""
    p, q = _normalised(first), _normalised(second)
    return _normalised(p * (1.0 - (1.0 - SAME_NAME) * q)), _normalised(q * (1.0 - (1.0 - SAME_NAME) * p))


def _normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum() if weights.sum() > 0 else np.full(weights.shape, 1.0 / weights.size)


def _cell(obj: Obj) -> tuple[int, int]:
    """Where an object's name lies in a role's (colours, kinds) table."""
    return obj[1], KINDS.index(IDX_TO_OBJECT[obj[0]])


def _against_free(meant: tuple, probs: np.ndarray, free: np.ndarray | None, untaught: np.ndarray | None,
                  own_untaught: np.ndarray | None = None) -> np.ndarray:
    """A mission cloze's answers read against the content-free mission's (`Design.calibrate`,
    names only: p / p_free; `Design.unshift`: p * untaught_free / p_free, ranked as the untaught
    model ranks them where it overturns the taught answer, `_ranked_as_untaught`), each normalised."""
    probs = np.asarray(probs, dtype=float)
    if free is None:
        return probs
    if design.DESIGN.calibrate and meant[1] is not None:
        return _normalised(probs / np.clip(free, 1e-6, None))
    if design.DESIGN.unshift and untaught is not None:
        unshifted = _normalised(probs * untaught / np.clip(free, 1e-12, None))
        return unshifted if own_untaught is None else _ranked_as_untaught(unshifted, probs, own_untaught)
    return probs


#: how far below the taught model's own answer an answer is all but ruled out (`_ranked_as_untaught`)
RULED_OUT = 0.01


def _ranked_as_untaught(unshifted: np.ndarray, taught: np.ndarray, untaught: np.ndarray) -> np.ndarray:
    """An unshifted read whose likeliest answer is one the taught model all but ruled out (below
    `RULED_OUT` times its own answer) and the untaught model ranks below that answer too is read
    again with each answer so ranked at most the taught answer's weight times their untaught odds;
    any other read is left (near ties, where the two models' rankings often differ, included).

    Unshifting divides the mission's answer by the content-free mission's, and where feedback has
    made an answer all but impossible for every mission, one vanishing probability by another: on
    `GoToObjMazeS4`, a teacher carried through the door curriculum read "go to the blue ball" as
    "go" 0.9999997 and "put" 3e-7, the content-free mission "put" 6e-15, and the ratio made it
    "put" (0.99999; the subgoal "pick up the green door", subgoal accuracy 0.71 against 1.00
    untaught). The same ratios carry what feedback taught, so no bound on them tells the two apart
    (taught on `GoToLocal`, "open the purple door" read "open" 8e-9 against the content-free 2e-10,
    and unshifting brought "open" back; a cap on the raise that stops "put" stops "open" too); the
    untaught model's ranking does: it read "go" above "put" there, and "open" above "go" here."""
    first, winner = int(np.argmax(taught)), int(np.argmax(unshifted))
    if winner == first or untaught[winner] >= untaught[first] or taught[winner] >= RULED_OUT * taught[first]:
        return unshifted
    bound = unshifted[first] * untaught / max(float(untaught[first]), 1e-12)
    return _normalised(np.where(untaught < untaught[first], np.minimum(unshifted, bound), unshifted))


def _unnamed(answers: np.ndarray) -> float:
    """The colour cloze's share on the kinds: how surely the mission names no colour."""
    return float(np.sum(answers[len(COLOURS):]))


def reads_colourless(answers: np.ndarray) -> bool:
    """Whether the colour cloze's kinds outweigh its colours: the mission read as naming no colour."""
    return _unnamed(answers) > 0.5


def _against(share: float, habit: float) -> float:
    """The kinds' share judged against the habit (their share for a content-free mission): where
    the model mostly skips the colour (a habit above 1/2), the share's odds divided by the habit's;
    elsewhere the share itself, since a habit of naming a colour makes no kind surer."""
    if habit <= 0.5:
        return share
    odds = share / max(1.0 - share, 1e-12) * (1.0 - habit) / habit
    return odds / (1.0 + odds)


def _colours(answers: np.ndarray, habit: np.ndarray | None = None) -> np.ndarray:
    """The object's colour from the colour cloze's answers (colours, then kinds: `Design.colourless`),
    the kinds' share judged against `habit`'s where given (`Design.habit`)."""
    named = answers[: len(COLOURS)]
    named = _normalised(named)
    if design.DESIGN.colourless == "ignored":
        return named
    unnamed = _unnamed(answers) if habit is None else _against(_unnamed(answers), _unnamed(habit))
    unnamed = unnamed if design.DESIGN.colourless == "mixed" else float(unnamed > 0.5)
    return (1.0 - unnamed) * named + unnamed / len(COLOURS)
