"""Teachers: a local LM (`smollm2`, `tiny`, `hf:PATH`), an HTTP endpoint, or the BabyAI bot."""

from __future__ import annotations

from mutualrl.config import TeacherConfig
from mutualrl.errors import MutualRLError
from mutualrl.teachers.base import Advice, Teacher
from mutualrl.teachers.bot import BotTeacher

TEACHER_NAMES = "smollm2 | bot | tiny | hf:PATH | endpoint:URL[#MODEL]"


def make_teacher(name: str, *, config: TeacherConfig | None = None, device: str = "cpu", seed: int = 0) -> Teacher:
    """A teacher from its name; `config` holds how a local model learns (LoRA and update settings)
    and how an endpoint is waited for."""
    if name == "bot":
        return BotTeacher()
    if name.startswith("endpoint:"):
        from mutualrl.teachers.endpoint import EndpointTeacher

        url, _, model = name[len("endpoint:"):].partition("#")
        if not url.startswith(("http://", "https://")):
            raise MutualRLError(f"endpoint teacher URL {url!r} must start with http:// or https://")
        config = config or TeacherConfig()
        return EndpointTeacher(url, model=model or None, timeout=config.endpoint_timeout, retries=config.endpoint_retries,
                               cooldown=config.endpoint_cooldown, max_in_flight=config.endpoint_in_flight)
    if name in ("smollm2", "tiny") or name.startswith("hf:"):
        from mutualrl.teachers import hf, models

        if name == "smollm2":
            model, tokenizer = models.load_pretrained(models.smollm2_folder())
        elif name == "tiny":
            model, tokenizer = models.tiny_model("causal", seed=seed)
        else:
            model, tokenizer = models.load_pretrained(name[3:])
        return hf.HFTeacher(model, tokenizer, config=config, device=device, seed=seed, name=name)
    raise MutualRLError(f"unknown teacher {name!r}; allowed: {TEACHER_NAMES}")


__all__ = ["Advice", "BotTeacher", "Teacher", "TEACHER_NAMES", "make_teacher"]
