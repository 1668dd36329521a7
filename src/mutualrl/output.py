"""What the terminal shows: our progress and tables; the libraries' own chatter (transformers'
warnings, weight-loading and conversion bars, BabyAI's mission-sampling prints) only when verbose."""

from __future__ import annotations

import logging
import os
import warnings

_verbose = False


def verbose() -> bool:
    return _verbose


def configure(verbose: bool = False) -> None:
    """Quiet the libraries (the default) or let them speak (`--verbose`). Call before loading models."""
    global _verbose
    _verbose = verbose
    ours = logging.getLogger("mutualrl")
    if not ours.handlers:  # our own notices (scoring method, checkpoint fallback): one line each
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("mutualrl: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # transformers' GGUF conversion (the embedded teacher's first load) draws a bare tqdm bar that its
    # own switch above does not reach; tqdm reads this when first imported
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|peft|torch)\b")
    for name in ("transformers", "peft", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # transformers is a dependency; this only guards a broken install's message
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
