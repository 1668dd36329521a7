"""Agent views built cell by cell, for the tests of what is read from a view (facts, steps)."""

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX


def view(*cells: tuple[tuple[int, int], str, str, str]) -> np.ndarray:
    """A 7x7 view of empty floor with (cell, kind, colour, state) placed; the agent's own cell
    (3, 6) holds what it carries."""
    image = np.zeros((7, 7, 3), dtype=np.uint8)
    image[..., 0] = OBJECT_TO_IDX["empty"]
    for cell, kind, colour, state in cells:
        image[cell] = (OBJECT_TO_IDX[kind], COLOR_TO_IDX[colour], STATE_TO_IDX[state])
    return image
