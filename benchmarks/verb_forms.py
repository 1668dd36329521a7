"""Zero-shot accuracy of the verb cloze alone, per form of its question, on missions in other words.

The verb is where missions in other words go wrong ("fetch the ball" read as go to it). Each form
of `FORMS` (words added to the system message, the question, the lead, the answers) is asked
about the missions of sampled layouts of each level whose actions offer more than one verb, as
given and in each rewording of `words.REWORDINGS`; the row shows, per level, how often the likeliest
verb is the mission's and (in brackets) its mean probability; "both ways", the kept form's answer
times the verb read the other way round (`channel`). Choose a form on the design sets
("reworded", "paraphrased") and confirm it once on "held-out".

    python benchmarks/verb_forms.py [--teacher smollm2] [--layouts 40] [--words "as given,reworded,paraphrased"]
                                    [--forms NAME,NAME]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

from mutualrl import channel, design, grounding, output
from mutualrl.envs import QuietReset, Situation, task_actions
from mutualrl.teachers import make_teacher, prompt
from mutualrl.teachers.base import answer_probs, softmax
from words import REWORDINGS, rewording

LEVELS = ("PickupLoc", "PutNextLocal", "OpenDoor", "UnlockLocal", "GoToObjDoor", "Open")
#: the template's verb at the start of a mission given as BabyAI writes it
TEMPLATE_VERBS = {"go to": "go", "pick up": "pick", "put": "put", "open": "open"}
ONE_WORD, PHRASES = ("go", "pick", "put", "open"), ("go to the", "pick up the", "put the", "open the")
SAY = "Say the mission again."
PLAIN = "In plain words, the mission is to"
VERBS_TOLD = " The agent can go to an object, pick up an object, put an object next to another, and open a door."
#: name -> (added to the system message, question, lead, answer per verb of `ONE_WORD`)
FORMS = {
    "say again": ("", SAY, PLAIN, ONE_WORD),
    "usual words": ("", "Say the mission again in the usual words.", PLAIN, ONE_WORD),
    "simple words": ("", "Say the mission again in simple words.", "The mission is to", ONE_WORD),
    "agent must": ("", SAY, "In plain words, the agent must", ONE_WORD),
    "what to do": ("", "What must the agent do?", "The agent must", ONE_WORD),
    "verbs told": (VERBS_TOLD, SAY, PLAIN, ONE_WORD),
    "verbs listed": ("", "Say the mission again with one of these verbs: go to, pick up, put next to, open.",
                     "The mission is to", ONE_WORD),
    "phrases": ("", SAY, PLAIN, PHRASES),
}
#: the kept form times the verb read the other way round (`channel`), at `design.Design.channel_weight`
BOTH_WAYS = "both ways"


def missions(level: str, layouts: int) -> list[str]:
    env = QuietReset(gym.make(f"BabyAI-{level}-v0"))
    found = sorted({env.reset(seed=1000 + seed)[0]["mission"] for seed in range(layouts)})
    env.close()
    return found


def verb_accuracy(teacher, form: str, level: str, given: list[str], words: str) -> tuple[float, float]:
    """How often the likeliest verb offered is the mission's, and its mean probability."""
    _, question, lead, answers = FORMS["usual words" if form == BOTH_WAYS else form]
    offered = grounding.verb_words(task_actions(f"BabyAI-{level}-v0"))
    reword = rewording(words) if words != "as given" else str
    asked = [Situation(reword(m), lead, tuple(answers[ONE_WORD.index(v)] for v in offered), question=question,
                       cloze=True) for m in given]
    other_way = [c for q in asked for c in channel.clozes(q.mission, offered)] if form == BOTH_WAYS else []
    said = np.array([answer_probs(row)[0] for row in teacher.score_each(other_way)]).reshape(len(asked), -1)
    hits, probs = [], []
    for mission, scores, likelihoods in zip(given, teacher.score_each(asked), said):
        truth = next(verb for start, verb in TEMPLATE_VERBS.items() if mission.startswith(start))
        p = softmax(scores)
        if form == BOTH_WAYS:
            p = channel.combined(p, likelihoods, design.Design().channel_weight)
        hits.append(offered[int(np.argmax(p))] == truth)
        probs.append(p[offered.index(truth)])
    return float(np.mean(hits)), float(np.mean(probs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--layouts", type=int, default=40, help="sampled layouts per level (their distinct missions)")
    parser.add_argument("--words", default="as given,reworded,paraphrased", help=f"of: as given, {', '.join(REWORDINGS)}")
    parser.add_argument("--forms", default=",".join((*FORMS, BOTH_WAYS)), help=f"of: {', '.join((*FORMS, BOTH_WAYS))}")
    args = parser.parse_args()
    wordings, forms = args.words.split(","), args.forms.split(",")
    for name, asked, allowed in (("words", wordings, ("as given", *REWORDINGS)), ("form", forms, (*FORMS, BOTH_WAYS))):
        bad = [value for value in asked if value not in allowed]
        if bad:
            parser.error(f"unknown {name} {bad[0]!r}; allowed: {', '.join(allowed)}")
    output.configure()
    given = {level: missions(level, args.layouts) for level in LEVELS}
    table = Table(title=f"verb cloze of {args.teacher}: share right (mean probability of the right verb)")
    for column in ("form", "words", *LEVELS):
        table.add_column(column)
    system = prompt.CLOZE_SYSTEM_PROMPT
    for form in forms:
        prompt.CLOZE_SYSTEM_PROMPT = system + FORMS.get(form, ("",))[0]
        teacher = make_teacher(args.teacher)  # a fresh scorer: its prompts are cached without the system message
        for words in wordings:
            row = [verb_accuracy(teacher, form, level, given[level], words) for level in LEVELS]
            table.add_row(form, words, *(f"{hit:.2f} ({p:.2f})" for hit, p in row))
            print(f"{form} / {words}: " + ", ".join(f"{lv} {hit:.2f} ({p:.2f})" for lv, (hit, p) in zip(LEVELS, row)),
                  flush=True)
    prompt.CLOZE_SYSTEM_PROMPT = system
    Console().print(table)


if __name__ == "__main__":
    main()
