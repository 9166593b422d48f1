"""LoRA adapters in PEFT's file format, so they move between minibert and `peft` + `transformers`.

Lecture 2.3; notebook notebooks/07_ways_to_finetune.ipynb. PEFT writes `adapter_config.json` (r, lora_alpha,
target_modules ...) and `adapter_model.safetensors` with keys `base_model.model.<module path>.lora_A.weight`;
minibert's module paths are transformers' (model/), so the mapping is that one prefix. What the test proves
(tests/test_methods_peft.py): an adapter saved here, loaded by peft onto transformers' BertModel, gives the same
outputs within 1e-5, and one trained by peft loads here with the same result.

Prefix tuning is not exported: PEFT keeps a BERT prefix as `past_key_values` of a task model (a prompt-encoder
format with its own layout), which minibert's PrefixEncoder does not mirror.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from .. import checkpoint

PEFT_PREFIX = "base_model.model."
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"


def save_peft_lora(model: nn.Module, folder: str | Path, overwrite: bool = False) -> Path:
    folder = Path(folder)
    method = getattr(model, "finetuning_method", None) or {}
    if method.get("method") != "lora":
        raise ValueError("save_peft_lora needs a model with LoRA applied: minibert.methods.apply(model, 'lora').")
    r, alpha = method.get("r", 8), method.get("alpha", 16)
    targets = sorted(set(method.get("target_modules") or ("query", "value")))
    state = {PEFT_PREFIX + name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters()
             if ".lora_A." in name or ".lora_B." in name}
    config = {"peft_type": "LORA", "task_type": None, "r": r, "lora_alpha": alpha, "target_modules": targets,
              "lora_dropout": method.get("dropout", 0.0), "bias": "none", "fan_in_fan_out": False,
              "init_lora_weights": True, "inference_mode": True, "modules_to_save": None,
              "base_model_name_or_path": None}
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        checkpoint.refuse_to_overwrite(folder / name, overwrite)
    with checkpoint.atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    with checkpoint.atomic_path(folder / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def load_peft_lora(model: nn.Module, folder: str | Path) -> nn.Module:
    """Apply LoRA as the PEFT folder says and load its A and B matrices."""
    from .apply import apply  # apply imports this module's neighbours; imported here to keep the arrows simple

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"no {name} in {folder}: a PEFT LoRA folder has {CONFIG_FILE} and {WEIGHTS_FILE}.")
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{folder / CONFIG_FILE} holds a {config.get('peft_type')} adapter; minibert reads LORA.")
    for unsupported in ("use_dora", "use_rslora", "fan_in_fan_out"):
        if config.get(unsupported):
            raise ValueError(f"{folder / CONFIG_FILE} sets {unsupported}, which minibert's LoRA does not implement.")
    apply(model, "lora", r=config["r"], alpha=config["lora_alpha"], dropout=config.get("lora_dropout", 0.0),
          target_modules=tuple(sorted(config["target_modules"])))  # PEFT keeps a set: any order
    state = {}
    for key, value in load_file(folder / WEIGHTS_FILE).items():
        name = key.removeprefix(PEFT_PREFIX).replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
        state[name] = value
    expected = {name for name, _ in model.named_parameters() if ".lora_A." in name or ".lora_B." in name}
    if set(state) != expected:
        raise ValueError(f"{folder / WEIGHTS_FILE} does not fit this model: missing {sorted(expected - set(state))[:4]}, "
                         f"unexpected {sorted(set(state) - expected)[:4]}. Was it trained on another architecture?")
    model.load_state_dict(state, strict=False)
    return model
