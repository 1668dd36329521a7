"""Teachers: a local LM (`smollm2`, `tiny`, `hf:PATH`), an HTTP endpoint, or the BabyAI bot."""

from __future__ import annotations

from mutualrl.errors import MutualRLError
from mutualrl.teachers.base import Advice, FeedbackItem, Teacher
from mutualrl.teachers.bot import BotTeacher

TEACHER_NAMES = "smollm2 | bot | tiny | hf:PATH | endpoint:URL[#MODEL]"


def make_teacher(name: str, *, device: str = "cpu", seed: int = 0, **learning) -> Teacher:
    """A teacher from its name; `learning` holds the HFTeacher's LoRA/update settings."""
    if name == "bot":
        return BotTeacher()
    if name.startswith("endpoint:"):
        from mutualrl.teachers.endpoint import EndpointTeacher

        url, _, model = name[len("endpoint:"):].partition("#")
        if not url.startswith(("http://", "https://")):
            raise MutualRLError(f"endpoint teacher URL {url!r} must start with http:// or https://")
        return EndpointTeacher(url, model=model or None)
    if name in ("smollm2", "tiny") or name.startswith("hf:"):
        from mutualrl.teachers import hf

        if name == "smollm2":
            model, tokenizer = hf.load_pretrained(hf.smollm2_folder())
        elif name == "tiny":
            model, tokenizer = hf.tiny_model("causal", seed=seed)
        else:
            model, tokenizer = hf.load_pretrained(name[3:])
        return hf.HFTeacher(model, tokenizer, device=device, seed=seed, name=name, **learning)
    raise MutualRLError(f"unknown teacher {name!r}; allowed: {TEACHER_NAMES}")


__all__ = ["Advice", "BotTeacher", "FeedbackItem", "Teacher", "TEACHER_NAMES", "make_teacher"]
