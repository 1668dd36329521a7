"""Grounding: which object and verb a mission means, asked of a language model as clozes.

A small model copies well from its context and does little else well. So the teacher is asked to
say the mission again, and each question is one word of that restatement, the next word after a
lead that begins its reply:

- the verb, where the level's actions allow more than one: "In plain words, the mission is to
  {go|pick|put|open}";
- for each verb, the colour of the object it needs: "The mission is to pick up the {red|...}"
  (the kinds are answers too: a kind named at once says the mission names no colour);
- and its kind, for each colour: "The mission is to pick up the red {ball|box|key|door}".

`put` needs two objects: the one to move ("... to put the") and the one to put it next to ("... to
put it next to the"). Every object name the level can hold is scored, so the teacher says from
the mission alone which object it means; the subgoal is then a visible object that matches
(`choice_weights`), or explore when none does. No code reads the mission's words: grounding them
is the language model's work (a mission in other words is restated all the same).

The questions depend on the mission and the level's verbs only, so one read serves every state,
episode and layout. Their answers are single tokens: the choice among them is the softmax of
those tokens' logits (`scoring.PrefixSharedScorer` computes only those rows).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from minigrid.core.constants import IDX_TO_OBJECT, OBJECT_TO_IDX

from mutualrl import channel, locations
from mutualrl.design import DESIGN, Design  # noqa: F401 (Design: its switches, as benchmarks and tests name them)
from mutualrl.envs import Situation
from mutualrl.subgoals import COLOURS, EXPLORE, KINDS, Obj, Subgoal, carried, visible_objects

#: the one-word answer for each verb (the subgoal verbs but `explore`), and the actions it needs
VERB_WORDS = {"go to": "go", "pick up": "pick", "put next to": "put", "open": "open"}
_NEEDS = {"go": (), "pick": ("pick up",), "put": ("pick up", "drop"), "open": ("toggle",)}
#: asked to restate the mission, the model copies (or rephrases into) each word an answer needs
#: The verb's lead asks for the mission in plain words (measured on missions in other words, "walk
#: over to", "place ... beside": after the bare "The mission is to" the verb was wrong in up to a
#: third of them, after "In plain words, ..." in none). The objects' leads stay bare: with "In
#: plain words" they named the object less often.
QUESTION, VERB_LEAD = "Say the mission again.", "In plain words, the mission is to"
#: the verb's question asks for the usual words: on missions in words of the benchmarks' design sets
#: the verb was right in 0.78 and 0.74 of pick-up and put missions, against 0.59 and 0.63 asked as the objects are
VERB_QUESTION = "Say the mission again in the usual words."
#: the weight of a put mission that names one object twice, against 1 for two objects (`apart`)
SAME_NAME = 0.01
#: the role of the next step's object (`steps`), asked with the facts of the state
NEXT = "next"
#: the restatement up to the object each verb needs (`put` needs two): the roles of objects
ROLES = {"go": "The mission is to go to the", "pick": "The mission is to pick up the", "open": "The mission is to open the",
         "move": "The mission is to put the", "fixed": "The mission is to put it next to the",
         NEXT: "So what the agent must deal with now is the"}  # (the next step's object: `steps`, its other forms too)
#: the mission of the clozes that measure the model's bias, whatever the mission
CONTENT_FREE = "N/A"


#: lead -> what the cloze asks: ("verb", None, None), (role, "colour", None) or (role, "kind", colour)
_MEANING: dict[str, tuple[str, str | None, str | None]] = {VERB_LEAD: ("verb", None, None),
                                                            channel.LEAD: ("channel", None, None)}


def add_lead(role: str, lead: str) -> None:
    """Read the clozes after `lead` (its colour, then its kind after each colour) as `role`'s."""
    _MEANING[lead] = (role, "colour", None)
    for colour in COLOURS:
        _MEANING[f"{lead} {colour}"] = (role, "kind", colour)


for _role, _lead in ROLES.items():
    add_lead(_role, _lead)


def meaning(cloze: Situation) -> tuple[str, str | None, str | None]:
    """What a grounding cloze asks: the verb, or a role's colour, or its kind given a colour."""
    return _MEANING[cloze.description]


def asks_colour(cloze: Situation) -> bool:
    """Whether a cloze asks a role's colour (its answers: the colours, then the kinds)."""
    return cloze.description in _MEANING and meaning(cloze)[1] == "colour" and cloze.actions == COLOURS + KINDS


def verb_words(actions: Sequence[str]) -> tuple[str, ...]:
    """The verbs the level's actions allow, as answer words (`go` always)."""
    return tuple(w for w, needs in _NEEDS.items() if all(a in actions for a in needs))


def mission_questions(mission: str, actions: tuple[str, ...]) -> tuple[Situation, ...]:
    """Every cloze about a mission: the verb (where there is a choice), and the colour and kind
    of the object each verb the actions allow needs; with calibration, the same about the
    content-free mission (one read per teacher version serves every mission); with the habit
    (`Design.habit`), its colour clozes, read once by the untaught model; to unshift
    (`Design.unshift`), all of its clozes both as taught and as untaught, and the mission's own
    as untaught too."""
    said, placed = DESIGN.channel_weight > 0, DESIGN.location_prior > 0
    own = _untaught_clozes(mission, actions, said) if DESIGN.unshift else ()
    return (_clozes(mission, actions, said) + own + _content_free(actions, said, DESIGN.calibrate, DESIGN.habit,
                                                                  DESIGN.unshift)
            + (_place_clozes(mission, actions, said) if placed else ()))


@functools.lru_cache(maxsize=4096)
def _place_clozes(mission: str, actions: tuple[str, ...], said: bool) -> tuple[Situation, ...]:
    """Where the mission places its object (`locations`), but for the clozes the channel asks already."""
    asked = set(_clozes(mission, actions, said))
    return tuple(q for q in locations.clozes(mission, verb_words(actions)) if q not in asked)


@functools.lru_cache(maxsize=4096)
def _untaught_clozes(mission: str, actions: tuple[str, ...], said: bool) -> tuple[Situation, ...]:
    """The mission's own clozes as the untaught model answers them (one read for the run): the
    ranking that unshifting may not overturn (`_ranked_as_untaught`)."""
    return tuple(dataclasses.replace(q, untaught=True) for q in _clozes(mission, actions, said)
                 if not channel.is_channel(q))


@functools.lru_cache(maxsize=64)
def _content_free(actions: tuple[str, ...], said: bool, calibrate: bool, habit: bool,
                  unshift: bool) -> tuple[Situation, ...]:
    """The content-free mission's clozes a design reads beside every mission's (built once, not
    at every state): its names to calibrate, its colour clozes read untaught for the habit, all of
    them read both ways to unshift."""
    free = [q for q in _clozes(CONTENT_FREE, actions, said) if not channel.is_channel(q)]
    taught = tuple(q for q in free if unshift or (calibrate and meaning(q)[1] is not None))
    return taught + tuple(dataclasses.replace(q, untaught=True) for q in free if unshift or (habit and asks_colour(q)))


@functools.lru_cache(maxsize=4096)
def _clozes(mission: str, actions: tuple[str, ...], said: bool) -> tuple[Situation, ...]:
    words = verb_words(actions)
    questions = [] if len(words) == 1 else [Situation(mission, VERB_LEAD, words, question=VERB_QUESTION, cloze=True)]
    for role in (r for w in words for r in (("move", "fixed") if w == "put" else (w,))):
        questions += name_clozes(mission, ROLES[role], QUESTION)
    if said and len(words) > 1:
        questions += channel.clozes(mission, words)
    if said and "put" in words:
        questions += channel.put_clozes(mission)
    return tuple(questions)


def name_clozes(mission: str, lead: str, question: str) -> list[Situation]:
    """The clozes of one object's name: its colour (or a kind at once) after `lead`, then its
    kind after each colour."""
    return [Situation(mission, lead, COLOURS + KINDS, question=question, cloze=True)] + \
        [Situation(mission, f"{lead} {c}", KINDS, question=question, cloze=True) for c in COLOURS]


@dataclass(frozen=True)
class Option:
    """One subgoal the teacher may choose, and the answers it amounts to: the verb word and the
    role whose object it is (None for explore)."""

    subgoal: Subgoal
    word: str | None = None
    role: str | None = None


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
        habit = untaught if DESIGN.habit else {}
        words = verb_words(actions)
        direct = dist.get(("verb", None, None), np.ones(len(words)))
        verbs = _likelihoods(said, "verb", None, words)
        if len(words) > 1 and verbs is not None:
            direct = channel.combined(direct, verbs, DESIGN.channel_weight)
        self.verbs = dict(zip(words, direct))
        self.places = {w: p for w in words if (p := locations.place_probs(said, w, DESIGN.location_prior)) is not None}
        self.names: dict[str, np.ndarray] = {}  # role -> (colours, kinds)
        for role in ROLES:
            if (role, "colour", None) in dist:
                self.names[role] = names(dist[(role, "colour", None)], [dist[(role, "kind", c)] for c in COLOURS],
                                         habit.get((role, "colour", None)))
                colours, kinds = _likelihoods(said, role, "colour", COLOURS), _likelihoods(said, role, "kind", KINDS)
                if colours is not None and kinds is not None:
                    self.names[role] = channel.combined(self.names[role], channel.names(colours, kinds),
                                                        DESIGN.channel_weight)
        if DESIGN.apart and "move" in self.names and "fixed" in self.names:
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
    key = (DESIGN, tuple(actions), tuple(questions), tuple(id(p) for p in probs))
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
    if DESIGN.calibrate and meant[1] is not None:
        return _normalised(probs / np.clip(free, 1e-6, None))
    if DESIGN.unshift and untaught is not None:
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


def _reads_colourless(answers: np.ndarray) -> bool:
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
    if DESIGN.colourless == "ignored":
        return named
    unnamed = _unnamed(answers) if habit is None else _against(_unnamed(answers), _unnamed(habit))
    unnamed = unnamed if DESIGN.colourless == "mixed" else float(unnamed > 0.5)
    return (1.0 - unnamed) * named + unnamed / len(COLOURS)


def words_of(obj: Obj) -> tuple[str, str]:
    """An object's colour and kind, as the clozes' answers name them."""
    return COLOURS[obj[1]], IDX_TO_OBJECT[obj[0]]


def _role(word: str, carrying: Obj | None) -> str:
    """The role of the object a verb word needs now (`put`: first the object to move)."""
    return word if word != "put" else ("move" if carrying is None else "fixed")


def subgoal_for(word: str, obj: Obj, carrying: Obj | None) -> tuple[str, str]:
    """The verb a subgoal on `obj` takes, and the role whose object it is, for a verb word."""
    role, door = _role(word, carrying), IDX_TO_OBJECT[obj[0]] == "door"
    if word == "put":
        return ("pick up" if carrying is None else "put next to"), role
    if word == "pick" and carrying is None and not door:
        return "pick up", role
    return ("open" if word == "open" and door else "go to"), role


def choice_weights(reading: Reading, image: np.ndarray,
                   places: dict[Obj, frozenset[str]] | None = None) -> tuple[list[Option], np.ndarray]:
    """The teacher's distribution over subgoals in this view: first the verb, then the object it
    needs.

    Given a verb word, a visible object weighs its name's probability in the verb's role, and
    explore `explore_ratio` times the likeliest name of that role that no visible object bears;
    these are normalised per verb and weighed by the verb's probability. So the mission's object
    wins where it is in view, explore where it is not, and where the mission names several
    objects alike ("a red object") any one in view wins over the unseen. (Normalised per verb,
    a role the model restates more surely cannot outvote the verb.)

    With the `places` of the visible objects (`locations.places_in_view`), each also weighs how
    likely the mission places its object there or nowhere: "the door on your left" is not the door
    on the right, and where no door in view is on the left, explore wins; explore, whose object's
    places are not known, weighs half of the places read (taken as all of them, missions in other
    words, whose places the model misreads more often, went to explore: `PickupLoc` 0.841 of the
    bot's states against 0.852 in held-out words, `OpenTwoDoors` 0.704 against 0.745; as given,
    `OpenDoor` 0.963 against 0.938, docs/results.md)."""
    seen, holding = visible_objects(image), carried(image)
    weights: dict[Option, float] = {Option(Subgoal(EXPLORE)): 0.0}
    for word, pw in reading.verbs.items():
        role = _role(word, holding)
        there = {obj: reading.at(word, places.get(obj, frozenset())) if places else 1.0 for obj in seen}
        given = {Option(Subgoal(subgoal_for(word, obj, holding)[0], obj), word, role): reading.p(role, obj) * there[obj]
                 for obj in seen}
        unseen = reading.at_unseen(word) if places else 1.0
        given[Option(Subgoal(EXPLORE))] = DESIGN.explore_ratio * reading.best_unseen(role, seen) * unseen
        total = sum(given.values())
        for option, w in given.items():
            weights[option] = weights.get(option, 0.0) + (pw * w / total if total > 0 else 0.0)
    options, w = list(weights), np.array(list(weights.values()))
    return options, w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))


def answers_for(questions: Sequence[Situation], option: Option) -> list[int]:
    """The answer a choice amounts to in each cloze (-1 where the cloze has no part in it): the
    verb word, and the chosen object's colour and kind in its role. Explore answers none."""
    answers = [-1] * len(questions)
    if option.role is None:
        return answers
    colour, kind = words_of(option.subgoal.obj)
    wanted = {("verb", None, None): option.word, (option.role, "colour", None): colour,
              (option.role, "kind", colour): kind}
    for i, q in enumerate(questions):
        answer = wanted.get(meaning(q)) if q.mission != CONTENT_FREE and not q.untaught else None
        if answer in q.actions:
            answers[i] = q.actions.index(answer)
    return answers


def choose(questions: Sequence[Situation], probs: Sequence[np.ndarray], image: np.ndarray, actions: Sequence[str],
           rng: np.random.Generator | None = None,
           weigh: Callable[[Reading, np.ndarray], tuple[list[Option], np.ndarray]] | None = None,
           done: frozenset[Subgoal] = frozenset()) -> tuple[Subgoal, list[int]]:
    """The teacher's subgoal from its answers (weighed by `weigh`, default `choice_weights`): the
    most likely, or with `rng` one drawn from its distribution; and the answer it amounts to in
    each cloze (what feedback is given on). The parts of the mission `done` in this episode are
    not chosen again, and once a part is done the mission's clozes, which then stand for a later
    part, are judged on nothing (`sequences`)."""
    if not questions or not (visible_objects(image) or carried(image)):  # (full hands may have a step: `steps`)
        return Subgoal(EXPLORE), [-1] * len(questions)
    options, weights = (weigh or choice_weights)(read(questions, probs, actions), image)
    weights = np.where([o.subgoal in done for o in options], 0.0, weights)
    if weights.sum() <= 0:
        return Subgoal(EXPLORE), [-1] * len(questions)
    weights = weights / weights.sum()
    option = options[int(rng.choice(len(options), p=weights)) if rng is not None else int(np.argmax(weights))]
    answers = answers_for(questions, option)
    if option.role is not None:
        answers = as_read(questions, answers, probs, option.subgoal.obj)
    return option.subgoal, [-1 if done and meaning(q)[0] != NEXT else a for q, a in zip(questions, answers)]


def as_read(questions: Sequence[Situation], answers: Sequence[int], probs: Sequence[np.ndarray], obj: Obj) -> list[int]:
    """The answers a choice of `obj` amounts to as the teacher read the mission: in a colour cloze
    whose kinds' answers outweigh its colours' (the mission names no colour), the object's kind
    rather than its colour, so that feedback confirms the reading instead of teaching the mission
    a colour (`Design.colourless`; "ignored" keeps the colour)."""
    if DESIGN.colourless == "ignored":
        return list(answers)
    kind = words_of(obj)[1]
    return [q.actions.index(kind) if a >= 0 and meaning(q)[1] == "colour" and kind in q.actions
            and _reads_colourless(p) else a for q, a, p in zip(questions, answers, probs)]
