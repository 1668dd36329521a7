"""Zero-shot reading of where a mission places its object ("the door on your left"), per form.

BabyAI's missions may place their object: on your left, on your right, in front of you, behind
you. Read forwards, a question and a lead whose next word is the place (`FORWARD_FORMS`, answers
`ANSWERS`, the last for a mission that places nothing); read the other way round (`locations`), the
likelihood of the mission after usual words with each place said and without one, the usual words
naming only "the object" or the mission's verb ("open the door"), each place weighed by a prior
against none. Per wording of the distinct missions of `OpenDoor`, `PickupLoc` and `GoToLocal`, the
row shows how often the likeliest answer is the instruction's place (or none), on the missions that
place their object and on those that do not. Choose on the design sets; confirm once on "held-out".

    python benchmarks/location_forms.py [--teacher smollm2] [--layouts 300] [--words "as given,reworded,paraphrased"]
                                        [--priors 0.02,0.05,0.1]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

from mutualrl import channel, locations, output
from mutualrl.envs import QuietReset, Situation
from mutualrl.teachers import make_teacher
from mutualrl.teachers.base import softmax
from words import rewording

LEVELS = ("BabyAI-OpenDoor-v0", "BabyAI-PickupLoc-v0", "BabyAI-GoToLocal-v0")
ANSWERS = (*locations.PLACES, "anywhere")
SAY = "Say the mission again."
FORWARD_FORMS = {
    "where is it": ("Where is the object the mission names?", "It is"),
    "the mission says": (SAY, "The mission says the object is"),
    "place of the object": (SAY, "The place of the object in the mission is"),
    "listed": ("Say where the mission's object is: left, right, front, behind or anywhere.", "The object is"),
}
#: the usual words a place is said after: the object alone, or the mission's verb (`locations`, kept)
BACKWARD_FORMS = {"the object": lambda verb: "the object", "the verb's words": lambda verb: channel.USUAL_WORDS[verb]}
_VERBS = {"GoToInstr": "go", "PickupInstr": "pick", "OpenInstr": "open"}


def missions(layouts: int) -> list[tuple[str, str, str]]:
    """Distinct (mission, verb word, place or "anywhere") over `layouts` of each level."""
    found = {}
    for level in LEVELS:
        env = QuietReset(gym.make(level))
        for seed in range(layouts):
            mission = env.reset(seed=1000 + seed)[0]["mission"]
            instr = env.unwrapped.instrs
            found[mission] = (_VERBS[type(instr).__name__], instr.desc.loc or "anywhere")
        env.close()
    return [(m, verb, place) for m, (verb, place) in found.items()]


def forward(teacher, said: list[str], form: tuple[str, str]) -> np.ndarray:
    """Each mission's likeliest answer among `ANSWERS`, read forwards."""
    question, lead = form
    scores = teacher.score_each([Situation(m, lead, ANSWERS, question=question, cloze=True) for m in said])
    return np.array([int(np.argmax(softmax(s))) for s in scores])


def backward(teacher, said: list[str], verbs: list[str], usual) -> np.ndarray:
    """Each mission's log-likelihood after the usual words with each place said, then with none."""
    words = [(usual(v) + p, m) for m, v in zip(said, verbs) for p in (*locations.PLACES.values(), "")]
    scores = teacher.score_each([channel.cloze(u, m) for u, m in words])
    return np.array([float(np.asarray(s).ravel()[0]) for s in scores]).reshape(len(said), -1)


def placed_by(logs: np.ndarray, prior: float) -> np.ndarray:
    """The likeliest place (or none, last) with each place weighed `prior` against none."""
    return (logs + np.log([prior] * len(locations.PLACES) + [1.0])).argmax(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--layouts", type=int, default=300)
    parser.add_argument("--words", default="as given,reworded,paraphrased",
                        help="comma-separated: as given, or keys of words.REWORDINGS")
    parser.add_argument("--priors", default="0.02,0.05,0.1", help="comma-separated priors of a place against none")
    args = parser.parse_args()
    output.configure()
    teacher, given = make_teacher(args.teacher), missions(args.layouts)
    truth = np.array([ANSWERS.index(place) for _, _, place in given])
    placed, verbs = truth < len(locations.PLACES), [verb for _, verb, _ in given]
    wordings = args.words.split(",")
    rows: dict[str, list[str]] = {}
    for words in wordings:
        reword = rewording(words) if words != "as given" else str
        said = [reword(m) for m, _, _ in given]
        reads = {f"forwards: {name}": forward(teacher, said, form) for name, form in FORWARD_FORMS.items()}
        for name, usual in BACKWARD_FORMS.items():
            logs = backward(teacher, said, verbs, usual)
            for prior in (float(p) for p in args.priors.split(",")):
                reads[f"the other way: {name}, prior {prior}"] = placed_by(logs, prior)
        for name, guess in reads.items():
            right = guess == truth
            share = f"{right.mean():.2f} ({right[placed].mean():.2f} / {right[~placed].mean():.2f})"
            rows.setdefault(name, []).append(share)
        print(f"read {words}", flush=True)
    table = Table(title=f"the place read right, {args.teacher}, {len(given)} missions "
                        f"({int(placed.sum())} placing their object): all (placed / not)")
    for column in ("form", *wordings):
        table.add_column(column)
    for name, cells in rows.items():
        table.add_row(name, *cells)
    Console().print(table)


if __name__ == "__main__":
    main()
