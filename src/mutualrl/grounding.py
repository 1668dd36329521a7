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
the mission alone which object it means. No code reads the mission's words: grounding them is the
language model's work (a mission in other words is restated all the same).

This module asks; `reading` turns the answers into distributions over verbs and object names, and
`choice` turns those into a subgoal in view (a visible object that matches, or explore when none
does).

The questions depend on the mission and the level's verbs only, so one read serves every state,
episode and layout. Their answers are single tokens: the choice among them is the softmax of
those tokens' logits (`scoring.PrefixSharedScorer` computes only those rows).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

from minigrid.core.constants import IDX_TO_OBJECT

from mutualrl import channel, design, locations
from mutualrl.envs import Situation
from mutualrl.subgoals import COLOURS, KINDS, Obj

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
    as untaught too; the door's colour the other way round (`Design.door_channel`)."""
    chosen = design.DESIGN
    said = chosen.channel_weight > 0
    own = _untaught_clozes(mission, actions, said) if chosen.unshift else ()
    free = _content_free(actions, said, chosen.calibrate, chosen.habit, chosen.unshift)
    placed = _place_clozes(mission, actions, said) if chosen.location_prior > 0 else ()
    doors = channel.door_clozes(mission) if said and chosen.door_channel and "open" in verb_words(actions) else ()
    return _clozes(mission, actions, said) + own + free + placed + doors


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


def words_of(obj: Obj) -> tuple[str, str]:
    """An object's colour and kind, as the clozes' answers name them."""
    return COLOURS[obj[1]], IDX_TO_OBJECT[obj[0]]
