"""The facts of a state, told in words: what the agent carries, the doors and their states."""

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

from mutualrl.facts import door_states, state_facts


def view(*cells: tuple[tuple[int, int], str, str, str]) -> np.ndarray:
    """A 7x7 view of empty floor with (cell, kind, colour, state) placed; the agent's own cell
    (3, 6) holds what it carries."""
    image = np.zeros((7, 7, 3), dtype=np.uint8)
    image[..., 0] = OBJECT_TO_IDX["empty"]
    for cell, kind, colour, state in cells:
        image[cell] = (OBJECT_TO_IDX[kind], COLOR_TO_IDX[colour], STATE_TO_IDX[state])
    return image


def test_facts_tell_what_is_carried_the_doors_states_and_the_rest_in_view():
    image = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "locked"),
                 ((5, 4), "door", "blue", "closed"), ((1, 4), "ball", "green", "open"))
    assert state_facts(image) == ("You carry a red key. The blue door is closed. The red door is locked. "
                                  "You see a green ball.")


def test_empty_hands_and_two_doors_alike_read_as_the_most_closed():
    image = view(((3, 2), "door", "yellow", "open"), ((2, 0), "door", "yellow", "locked"))
    assert door_states(image) == {(OBJECT_TO_IDX["door"], COLOR_TO_IDX["yellow"]): "locked"}
    assert state_facts(image) == "You carry nothing. The yellow door is locked."
