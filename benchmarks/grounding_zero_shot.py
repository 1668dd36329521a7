"""Zero-shot subgoal accuracy of the untaught teacher, per level and per grounding design.

Along the BabyAI bot's own held-out episodes, how often the teacher's most likely subgoal is one
the bot's stack holds (`evaluation.subgoal_agreement`), with the level's task actions and with
all seven (every verb offered), for each design of `design.Design`. A design changes only how
the answers become a choice, so every design reads the same cached answers. `--reworded` adds a
row per level whose missions the teacher reads in other words (synonyms, other phrasing): the
grounding must not depend on the templates' words; `--held-out`, a row in words that never took
part in choosing a design or a question. `--channel-weights` gives each design a column per weight
of the verb read the other way round (`channel`; 0 asks no such question), `--apart` one per way
of reading the two objects of `put` (`design.Design.apart`), `--habit` one per way of reading
the colour cloze's kind share (`design.Design.habit`), `--location-priors` one per prior of a
place the mission gives its object (`locations`; 0 asks no such question), `--by-subgoal` one per
way of reading the most likely subgoal (`design.Design.by_subgoal`), `--door-channel` one per way of
reading the colour of a door to open (`design.Design.door_channel`), `--in-hand-done` one per way of
counting a reading whose object is in hand (`design.Design.in_hand_done`).

    python benchmarks/grounding_zero_shot.py [--teacher smollm2] [--episodes 20] [--seed 0]
                                             [--levels L1,L2] [--designs D1,D2] [--reworded] [--held-out]
                                             [--channel-weights 0,0.25] [--apart on,off] [--habit on,off]
                                             [--location-priors 0,0.05] [--by-subgoal on,off] [--door-channel on,off]
                                             [--in-hand-done on,off]
                                             [--spaces task,full]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

from rich.console import Console
from rich.table import Table

from mutualrl import design, output
from mutualrl.envs import task_actions
from mutualrl.evaluation import subgoal_agreement
from mutualrl.teachers import make_teacher
from words import rewording

LEVELS = ("BabyAI-GoToRedBall-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0", "BabyAI-PutNextLocal-v0")
#: calibrated or as read, the explore ratio, and what a colourless mission does (`design.Design`)
DESIGNS = {f"{'calibrated' if calibrate else 'as read'} {ratio}{'' if colourless == 'ignored' else ' ' + colourless}":
           design.Design(calibrate, ratio, colourless)
           for calibrate in (True, False) for ratio in (0.5, 0.25, 0.1) for colourless in ("ignored", "mixed", "majority")}


def _switches(parser: argparse.ArgumentParser, name: str, values: str) -> list[bool]:
    bad = [v for v in values.split(",") if v not in ("on", "off")]
    if bad:
        parser.error(f"{name}: {bad[0]!r} is not one of on, off")
    return [v == "on" for v in values.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--designs", default=",".join(DESIGNS), help=f"comma-separated, of: {', '.join(DESIGNS)}")
    parser.add_argument("--reworded", action="store_true", help="also read the missions in other words")
    parser.add_argument("--held-out", action="store_true", help="also read them in words never used to choose a design")
    parser.add_argument("--channel-weights", default=str(design.Design().channel_weight),
                        help="comma-separated weights of the verb read the other way round")
    parser.add_argument("--apart", default="on" if design.Design().apart else "off",
                        help="comma-separated, of on, off: the two objects of put read as different objects")
    parser.add_argument("--habit", default="on" if design.Design().habit else "off",
                        help="comma-separated, of on, off: the colour cloze's kind share judged against a content-free mission's")
    parser.add_argument("--location-priors", default=str(design.Design().location_prior),
                        help="comma-separated priors of a place the mission gives its object, against none")
    parser.add_argument("--by-subgoal", default="on" if design.Design().by_subgoal else "off",
                        help="comma-separated, of on, off: the likeliest subgoal by all of its readings, or the likeliest reading's")
    parser.add_argument("--door-channel", default="on" if design.Design().door_channel else "off",
                        help="comma-separated, of on, off: the colour of a door to open read the other way round too")
    parser.add_argument("--in-hand-done", default="on" if design.Design().in_hand_done else "off",
                        help="comma-separated, of on, off: a reading whose object is in hand counted done")
    parser.add_argument("--spaces", default="task,full", help="action spaces: task, full or both")
    args = parser.parse_args()
    output.configure()
    # each design field measured: its label and the values asked (named in a design's label unless only its default is)
    axes = {"channel_weight": ("channel", [float(w) for w in args.channel_weights.split(",")]),
            "apart": ("apart", _switches(parser, "--apart", args.apart)),
            "habit": ("habit", _switches(parser, "--habit", args.habit)),
            "location_prior": ("places", [float(p) for p in args.location_priors.split(",")]),
            "by_subgoal": ("by subgoal", _switches(parser, "--by-subgoal", args.by_subgoal)),
            "door_channel": ("door channel", _switches(parser, "--door-channel", args.door_channel)),
            "in_hand_done": ("in hand done", _switches(parser, "--in-hand-done", args.in_hand_done))}
    named = [(field, label) for field, (label, values) in axes.items() if values != [getattr(design.Design(), field)]]
    designs = {}
    for name in args.designs.split(","):
        for chosen in itertools.product(*(values for _, values in axes.values())):
            fields = dict(zip(axes, chosen))
            designs[name + "".join(f" {label} {fields[field]:g}" for field, label in named)] = \
                dataclasses.replace(DESIGNS[name], **fields)
    teacher = make_teacher(args.teacher, seed=args.seed)
    table = Table(title=f"zero-shot subgoal accuracy of {args.teacher} ({args.episodes} held-out bot episodes, "
                        f"seed {args.seed})")
    for column in ("level", "actions", "missions", *designs, "seconds"):
        table.add_column(column)
    for env_id in args.levels.split(","):
        for space in args.spaces.split(","):
            readings = {"as given": None} | {w: rewording(w) for w, on in (("reworded", args.reworded),
                                                                           ("held-out", args.held_out)) if on}
            for words, reword in readings.items():
                start, row = time.perf_counter(), []
                for chosen in designs.values():
                    design.DESIGN = chosen
                    row.append(subgoal_agreement(teacher, env_id, args.episodes, args.seed,
                                                 task_actions(env_id, space), reword=reword))
                table.add_row(env_id, space, words, *(f"{a:.3f}" for a in row), f"{time.perf_counter() - start:.0f}")
                print(f"{env_id} {space} {words}: " + ", ".join(f"{n} {a:.3f}" for n, a in zip(designs, row)), flush=True)
    Console().print(table)


if __name__ == "__main__":
    main()
