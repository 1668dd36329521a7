"""Where a mission places its object ("the door on your left"): the places of the objects in view,
from the pose at the start of the episode, and a choice that weighs how likely the mission places
its object there (`locations`)."""

import numpy as np
import pytest
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from mutualrl import channel, design, locations
from mutualrl.envs import make_env, unwrapped_envs
from mutualrl.evaluation import subgoal_agreement
from mutualrl.grounding import meaning
from mutualrl.locations import places_in_view, pose_of
from mutualrl.subgoals import level_cell
from mutualrl.teachers import Advice, Teacher

LEVEL = "BabyAI-OpenDoorLoc-v0"


def _matching(env) -> set[tuple[int, int]]:
    """The cells of the objects the level's own verifier lets the mission mean."""
    return {tuple(int(x) for x in o.cur_pos) for o in env.instrs.desc.obj_set}


def _named(env, obj: tuple[int, int]) -> bool:
    """Whether `obj` bears the name the mission gives (its kind, and its colour where it says one)."""
    desc = env.instrs.desc
    return obj[0] == OBJECT_TO_IDX[desc.type] and (desc.color is None or obj[1] == COLOR_TO_IDX[desc.color])


@pytest.mark.parametrize("level", [LEVEL, "BabyAI-PickupLoc-v0"])
def test_the_places_of_the_objects_in_view_are_those_the_levels_own_verifier_reads(level):
    """Along random turns and steps from the start, an object in view is at the mission's place
    exactly where the verifier, which reads the place from the pose at the start, matches it."""
    envs, rng, checked = make_env(level, 1, seed=0), np.random.default_rng(0), 0
    for seed in range(30):
        obs, _ = envs.reset(seed=seed)
        env = unwrapped_envs(envs)[0]
        place, start = env.instrs.desc.loc, pose_of(env)
        if place is None:
            continue
        for _ in range(12):
            seen = places_in_view(obs["image"][0], pose_of(env), start)
            for obj, places in seen.items():
                cells = np.argwhere(np.all(obs["image"][0][..., :2] == obj, axis=-1))
                if _named(env, obj) and len(cells) == 1:  # (one cell of its name in view: its places are its own)
                    where = level_cell(tuple(cells[0]), env.agent_pos, env.agent_dir)
                    assert (place in places) == (where in _matching(env)), (seed, obj, places, place)
                    checked += 1
            obs, *_ = envs.step(np.array([rng.choice([0, 1, 2])]))  # turn left or right, or go forward
    assert checked > 20


class ReadsThePlace(Teacher):
    """Answers an `OpenDoorLoc` mission as a teacher that reads only its place would: the verb
    open, a door of no named colour, and the mission far likelier after its own place's usual
    words than after any other or none. It reads the live level's instruction: the choice made
    from its answers is under test."""

    def advise(self, situations, envs=None):
        return [Advice(probs=self._answer(s, env.instrs.desc.loc)) for s, env in zip(situations, envs)]

    @staticmethod
    def _answer(cloze, place: str) -> np.ndarray:
        if channel.is_channel(cloze):
            said = channel.about(cloze)
            return np.array([1e-4 if said == ("open", "place", place) else 1e-8])
        weights = np.full(len(cloze.actions), 0.01)
        role, asks, _ = meaning(cloze)
        weights[cloze.actions.index("open" if role == "verb" else "door")] = 1.0
        return weights / weights.sum()


def test_a_mission_placing_its_door_is_followed_only_where_the_places_are_read(monkeypatch):
    """Along the bot's episodes, the teacher names the door the bot opens (or looks for it, as the
    bot does) nearly everywhere; with no place read (a prior of 0), any door in view."""
    placed = subgoal_agreement(ReadsThePlace(), LEVEL, 10, 0)
    monkeypatch.setattr(design, "DESIGN", design.Design(location_prior=0.0))
    unplaced = subgoal_agreement(ReadsThePlace(), LEVEL, 10, 0)
    assert placed > 0.95 and unplaced < 0.85


def test_a_place_weighs_the_prior_against_none():
    """Equal likelihoods leave the prior; a mission much likelier after one place names it."""
    said = {("verb", None, "go"): 1e-6} | {("go", "place", p): 1e-6 for p in locations.PLACES}
    p = locations.place_probs(said, "go", 0.05)
    assert np.isclose(p[-1], 1 / (1 + 0.05 * len(locations.PLACES)))
    said[("go", "place", "behind")] = 1e-2
    p = locations.place_probs(said, "go", 0.05)
    assert int(np.argmax(p)) == list(locations.PLACES).index("behind") and p[-1] < 0.01
    assert locations.place_probs({("verb", None, "go"): 1e-6}, "go", 0.05) is None  # not asked about every place
