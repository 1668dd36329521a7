"""Zero-shot accuracy of the two objects of `put`, per form of their clozes, on missions in other words.

A put mission names two objects, and the read of the object to move is where it goes wrong: after
"The mission is to put the", a small model copies the last object named as often as the first.
For each form of the object to move's clozes (`MOVE_FORMS`: question and lead) and of the object
to put it next to's (`FIXED_FORMS`), read each alone, `apart` (`reading.apart`: the two as two
different objects), and apart after each role's read times the mission's likelihood after put's usual
words naming each colour and kind ("both ways", `channel.put_clozes`, weighed
`design.Design.channel_weight`), the row shows, per wording of `PutNextLocal`'s missions, how
often the likeliest name of each role is the instruction's object, and both at once. Choose a form
on the design sets ("reworded", "paraphrased") and confirm it once on "held-out".

    python benchmarks/put_forms.py [--teacher smollm2] [--layouts 40] [--words "as given,reworded,paraphrased"]
                                   [--move-forms NAME,NAME] [--fixed-forms NAME,NAME]
"""

from __future__ import annotations

import argparse
import itertools

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

from mutualrl import channel, design, grounding, output, reading
from mutualrl.envs import QuietReset
from mutualrl.teachers import make_teacher
from words import rewording

LEVEL = "BabyAI-PutNextLocal-v0"
SAY, USUAL = grounding.QUESTION, grounding.VERB_QUESTION
MOVE_FORMS = {
    "put the": (SAY, "The mission is to put the"),
    "usual words: put the": (USUAL, "The mission is to put the"),
    "plain words: put the": (SAY, "In plain words, the mission is to put the"),
    "pick up the": (SAY, "The mission is to pick up the"),
    "first pick up": (SAY, "First, pick up the"),
    "object to move": (SAY, "The object to move is the"),
    "carry": (SAY, "The agent must carry the"),
}
FIXED_FORMS = {
    "put it next to": (SAY, "The mission is to put it next to the"),
    "usual words: put it next to": (USUAL, "The mission is to put it next to the"),
    "object to reach": (SAY, "The object to put it next to is the"),
    "then next to": (SAY, "Then put it next to the"),
}
KEPT = ("put the", "put it next to")
#: each role read alone, the two read apart, and apart after each read times the other way round's
READS = ("alone", "apart", "both ways")


def layouts(count: int) -> list[tuple[str, dict[str, tuple[str | None, str]]]]:
    """Sampled missions, each with the (colour, kind) of its object to move and of the fixed one."""
    env, found = QuietReset(gym.make(LEVEL)), []
    for seed in range(count):
        mission = env.reset(seed=1000 + seed)[0]["mission"]
        instruction = env.unwrapped.instrs
        found.append((mission, {role: (desc.color, desc.type) for role, desc in
                                (("move", instruction.desc_move), ("fixed", instruction.desc_fixed))}))
    env.close()
    return found


def read(teacher, missions: list[str], form: tuple[str, str]) -> list[np.ndarray]:
    """Each mission's read of every object name (colours, kinds) in one form."""
    question, lead = form
    asked = [grounding.name_clozes(m, lead, question) for m in missions]
    probs = [a.probs for a in teacher.advise([c for clozes in asked for c in clozes])]
    per = len(asked[0])
    return [reading.names(probs[i * per], probs[i * per + 1:(i + 1) * per]) for i in range(len(asked))]


def read_other_way(teacher, missions: list[str]) -> list[dict[str, np.ndarray]]:
    """Each mission's likelihoods per object name of each role, read the other way round."""
    found = []
    for mission in missions:
        asked = channel.put_clozes(mission)
        said = {channel.about(q): float(a.probs[0]) for q, a in zip(asked, teacher.advise(list(asked)))}
        found.append({role: channel.names([said[role, "colour", c] for c in grounding.COLOURS],
                                          [said[role, "kind", k] for k in grounding.KINDS]) for role in ("move", "fixed")})
    return found


def right(names: np.ndarray, truth: tuple[str | None, str]) -> bool:
    colour, kind = np.unravel_index(int(np.argmax(names)), names.shape)
    return grounding.KINDS[kind] == truth[1] and truth[0] in (None, grounding.COLOURS[colour])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--layouts", type=int, default=40)
    parser.add_argument("--words", default="as given,reworded,paraphrased",
                        help="comma-separated: as given, or keys of words.REWORDINGS")
    parser.add_argument("--move-forms", default=",".join(MOVE_FORMS), help=f"comma-separated, of: {', '.join(MOVE_FORMS)}")
    parser.add_argument("--fixed-forms", default=",".join(FIXED_FORMS),
                        help=f"comma-separated, of: {', '.join(FIXED_FORMS)}")
    args = parser.parse_args()
    output.configure()
    teacher, given = make_teacher(args.teacher), layouts(args.layouts)
    wordings = args.words.split(",")
    reads = {}  # (role, form, words) -> names per mission
    for words in wordings:
        reword = rewording(words) if words != "as given" else str
        for role, forms, chosen in (("move", MOVE_FORMS, args.move_forms), ("fixed", FIXED_FORMS, args.fixed_forms)):
            for name in chosen.split(","):
                reads[role, name, words] = read(teacher, [reword(m) for m, _ in given], forms[name])
        reads["other way", words] = read_other_way(teacher, [reword(m) for m, _ in given])
        print(f"read {words}", flush=True)
    table = Table(title=f"object of put right, {args.teacher}, {args.layouts} PutNextLocal missions "
                        f"(to move / next to / both; kept: {' + '.join(KEPT)}, both ways)")
    for column in ("to move", "next to", "read", *wordings):
        table.add_column(column)
    weight = design.Design().channel_weight
    for move, fixed, how in itertools.product(args.move_forms.split(","), args.fixed_forms.split(","), READS):
        cells = []
        for words in wordings:
            hits = []
            for (_, truth), m, f, said in zip(given, reads["move", move, words], reads["fixed", fixed, words],
                                              reads["other way", words]):
                if how == "both ways":
                    m, f = channel.combined(m, said["move"], weight), channel.combined(f, said["fixed"], weight)
                m, f = reading.apart(m, f) if how != "alone" else (m, f)
                hits.append((right(m, truth["move"]), right(f, truth["fixed"])))
            moved, beside = np.mean(hits, axis=0)
            cells.append(f"{moved:.2f} / {beside:.2f} / {np.mean([a and b for a, b in hits]):.2f}")
        table.add_row(move, fixed, how, *cells)
    Console().print(table)


if __name__ == "__main__":
    main()
