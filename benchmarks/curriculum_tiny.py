"""Wall time of a two-stage curriculum with the tiny teacher, all five arms, one seed: what the
end-to-end curriculum test runs.

    python benchmarks/curriculum_tiny.py
"""

from __future__ import annotations

import tempfile
import time

from mutualrl import output
from mutualrl.curriculum import ARMS, Curriculum, run_curriculum

SETTINGS = {"teacher": "tiny", "num_envs": 4, "num_steps": 16, "eval_every": 1, "eval_episodes": 2,
            "checkpoint_every": 1, "teacher_eval_every": 0, "teacher_update_every": 1, "teacher_batch": 8,
            "teacher_update_steps": 1}
STAGES = [{"env_id": "BabyAI-GoToRedBallNoDists-v0", "frames": 128, "target": 0.9},
          {"env_id": "BabyAI-GoToRedBall-v0", "frames": 128, "target": 0.9}]


def main() -> None:
    output.configure()
    curriculum = Curriculum.from_dict({**SETTINGS, "stages": STAGES})
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_curriculum(curriculum, list(ARMS), 1, out, quiet=True)
        print(f"two-stage curriculum, tiny teacher, arms {', '.join(ARMS)}, one seed: "
              f"{time.perf_counter() - start:.1f} s (after imports)")


if __name__ == "__main__":
    main()
