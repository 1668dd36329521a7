"""Zero-shot subgoal accuracy on the door levels with each form of the next step's question.

Each form of `steps.FORMS` (the rule told after the facts of the state, and the lead before the
object's colour) is asked in turn; along the BabyAI bot's own held-out episodes, how often the
untaught teacher's subgoal is one the bot's stack holds (`evaluation.subgoal_agreement`, as
`mutualrl eval --advice subgoal` measures it). Choose a form on one seed block and confirm it on
another (`--seed`). `--missing-keys on,off` asks each form with and without a locked door's
missing key told (`facts.TELL_MISSING_KEYS`); `--rule always,locked,"locked or key"` with the rule told
at every state, only where a locked door is in view, or there and where the hands hold a key
(`steps.RULE_WHERE`).

    python benchmarks/step_forms.py [--teacher smollm2] [--episodes 10] [--seed 0] [--forms NAME,NAME] \
        [--missing-keys on] [--rule always] [--levels UnlockLocal,UnlockPickup,BlockedUnlockPickup,KeyCorridorS3R1]
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from mutualrl import facts, output, steps
from mutualrl.evaluation import subgoal_agreement
from mutualrl.teachers import make_teacher

LEVELS = ("UnlockLocal", "UnlockPickup", "BlockedUnlockPickup", "KeyCorridorS3R1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--forms", default=",".join(steps.FORMS), help=f"of: {', '.join(steps.FORMS)}")
    parser.add_argument("--missing-keys", default="on", help="on, off or on,off: tell a locked door's missing key")
    parser.add_argument("--rule", default=steps.RULE_WHERE, help=f"where the rule is told, one or more of: {', '.join(steps.RULE_TOLD)}")
    parser.add_argument("--levels", default=",".join(LEVELS), help="BabyAI level names, without BabyAI- and -v0")
    args = parser.parse_args()
    forms = args.forms.split(",")
    unknown = [form for form in forms if form not in steps.FORMS]
    if unknown:
        parser.error(f"unknown form {unknown[0]!r}; allowed: {', '.join(steps.FORMS)}")
    told = {"on": True, "off": False}
    missing = args.missing_keys.split(",")
    if any(m not in told for m in missing):
        parser.error(f"--missing-keys {args.missing_keys!r}: allowed on, off, or on,off")
    rules = args.rule.split(",")
    if any(r not in steps.RULE_TOLD for r in rules):
        parser.error(f"--rule {args.rule!r}: allowed {', '.join(steps.RULE_TOLD)}, or several with commas")
    output.configure()
    teacher = make_teacher(args.teacher, seed=args.seed)
    levels = args.levels.split(",")
    table = Table(title=f"zero-shot subgoal accuracy of {args.teacher} by the step's form "
                        f"({args.episodes} held-out bot episodes, seed {args.seed})")
    for column in ("form", "missing keys", "rule", "lead", *levels, "seconds"):
        table.add_column(column)
    for form in forms:
        for m in missing:
            for where in rules:
                steps.FORM, facts.TELL_MISSING_KEYS, steps.RULE_WHERE = form, told[m], where
                start = time.perf_counter()
                row = [subgoal_agreement(teacher, f"BabyAI-{level}-v0", args.episodes, args.seed) for level in levels]
                rule, lead = steps.FORMS[form]
                table.add_row(form, m, f"{rule} ({where})", lead, *(f"{a:.3f}" for a in row),
                              f"{time.perf_counter() - start:.0f}")
                print(f"{form}, missing keys {m}, rule {where}: " + ", ".join(f"{level} {a:.3f}" for level, a in zip(levels, row)),
                      flush=True)
    Console().print(table)


if __name__ == "__main__":
    main()
