"""The teacher's most likely subgoal counts every verb reading that leads to it (`choice.likeliest`)."""

import numpy as np
import pytest

from mutualrl import design
from mutualrl.choice import Option, likeliest, subgoal_for
from mutualrl.subgoals import Subgoal

RED_BOX, BLUE_KEY = (7, 0), (5, 2)  # (object index, colour index): a box, a key


def _options(words_weights: list[tuple[str, float]], obj: tuple[int, int], carrying=None) -> tuple[list[Option], np.ndarray]:
    options = [Option(Subgoal(subgoal_for(word, obj, carrying)[0], obj), word, subgoal_for(word, obj, carrying)[1])
               for word, _ in words_weights]
    return options, np.array([w for _, w in words_weights])


def test_a_verb_split_between_readings_is_the_subgoal_most_of_them_say():
    # "fetch the red box": go 0.36, pick 0.35, put 0.19 (its first step picks the box up), open 0.10 (a box: gone to)
    options, weights = _options([("go", 0.36), ("pick", 0.35), ("put", 0.19), ("open", 0.10)], RED_BOX)
    assert options[int(np.argmax(weights))].subgoal.verb == "go to"
    chosen = options[likeliest(options, weights)]
    assert chosen.subgoal == Subgoal("pick up", RED_BOX) and chosen.word == "pick"


def test_words_that_cannot_apply_do_not_outvote_the_one_that_does():
    # the key in hand: pick and open cannot apply and go to the box; put puts the key next to it
    options, weights = _options([("put", 0.35), ("go", 0.30), ("pick", 0.20), ("open", 0.15)], RED_BOX, carrying=BLUE_KEY)
    assert sum(w for o, w in zip(options, weights) if o.subgoal.verb == "go to") > 0.35
    assert options[likeliest(options, weights)].subgoal == Subgoal("put next to", RED_BOX)


def test_by_reading_the_heaviest_reading_wins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(design, "DESIGN", design.Design(by_subgoal=False))
    options, weights = _options([("go", 0.36), ("pick", 0.35), ("put", 0.19), ("open", 0.10)], RED_BOX)
    assert options[likeliest(options, weights)].subgoal == Subgoal("go to", RED_BOX)
