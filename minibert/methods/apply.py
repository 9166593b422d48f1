"""One interface to every way of fine-tuning: apply a method to a model, count what trains, save only that.

Lecture 2.3 (how to fine-tune); notebook notebooks/06_ways_to_finetune.ipynb.
    apply(model, "lora", r=8)      -> the model, changed in place: what the method trains has requires_grad
    count_parameters(model)        -> (trainable, total)
    merge(model) / unmerge(model)  -> LoRA's B A into the weights and back; prefix tuning's MLP computed away
    save_trained(model, folder)    -> only what the method trained, plus the task head: kilobytes, not a model
    load_trained(model, folder)    -> the same method applied to a fresh base model, and those weights put back

`model` is a BertModel or a model with a task head on one (model.bert, as transformers' heads have it): the
head (everything outside the encoder) always trains, since a new task needs a new output layer.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from .. import checkpoint
from .adapter import add_adapters
from .lora import LoRALinear, add_lora
from .prefix import PrefixEncoder, add_prefix
from .weighted import add_scalar_mix

METHODS = ("frozen", "full", "adapter", "weighted", "lora", "bitfit", "prefix")
METHOD_FILE, WEIGHTS_FILE = "method.json", "method.safetensors"


def encoder_of(model: nn.Module) -> nn.Module:
    """The BertModel inside a task model (model.bert), or the model itself."""
    return getattr(model, getattr(model, "base_model_prefix", "bert"), model)


def apply(model: nn.Module, method: str, **options) -> nn.Module:
    """Set up `model` for one way of fine-tuning. Options: adapter (bottleneck=64, placement="houlsby"),
    lora (r=8, alpha=16, dropout=0.0, target_modules=("query", "value")), prefix (num_virtual_tokens=20,
    projection_size=512)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if getattr(model, "finetuning_method", None):
        raise ValueError(f"this model already has {model.finetuning_method['method']!r} applied; start from a "
                         "fresh model.")
    bert = encoder_of(model)
    model.requires_grad_(True)  # the head, and everything for "full"
    if method != "full":
        bert.requires_grad_(False)
    if method == "adapter":
        add_adapters(bert.encoder, **options)
        for name, parameter in bert.named_parameters():  # adapters are new (trainable); LayerNorms train too
            parameter.requires_grad_(".adapter." in name or "LayerNorm" in name)
    elif method == "lora":
        add_lora(bert, **options)  # new lora_A / lora_B train; the wrapped weights are frozen
    elif method == "bitfit":
        for name, parameter in bert.named_parameters():
            parameter.requires_grad_(name.endswith("bias"))
    elif method == "weighted":
        add_scalar_mix(bert)
    elif method == "prefix":
        add_prefix(bert, **options)
    elif options:
        raise ValueError(f"{method!r} takes no options; got {', '.join(options)}.")
    model.finetuning_method = {"method": method, **options}
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of the model, each shared tensor counted once."""
    parameters = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)


def merge(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (LoRALinear, PrefixEncoder)):
            module.merge()


def unmerge(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.unmerge()


def trained_state(model: nn.Module) -> dict:
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def save_trained(model: nn.Module, folder: str | Path, overwrite: bool = False) -> Path:
    """method.json (the method and its options) and method.safetensors (only the trained tensors)."""
    folder = Path(folder)
    if not getattr(model, "finetuning_method", None):
        raise ValueError("apply a method first (minibert.methods.apply): there is nothing method-specific to save.")
    checkpoint.refuse_to_overwrite(folder / METHOD_FILE, overwrite)
    checkpoint.refuse_to_overwrite(folder / WEIGHTS_FILE, overwrite)
    with checkpoint.atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file({k: v.to("cpu").contiguous() for k, v in trained_state(model).items()}, str(tmp))
    with checkpoint.atomic_path(folder / METHOD_FILE) as tmp:
        tmp.write_text(json.dumps(model.finetuning_method, indent=2) + "\n", encoding="utf-8")
    return folder


def load_trained(model: nn.Module, folder: str | Path) -> nn.Module:
    """Apply the saved method to `model` (the same base weights it was trained from) and load what it trained."""
    folder = Path(folder)
    if not (folder / METHOD_FILE).is_file():
        raise FileNotFoundError(f"no {METHOD_FILE} in {folder}: save_trained writes it beside {WEIGHTS_FILE}.")
    options = json.loads((folder / METHOD_FILE).read_text(encoding="utf-8"))
    method = options.pop("method")
    if options.get("target_modules") is not None:
        options["target_modules"] = tuple(options["target_modules"])
    apply(model, method, **options)
    if method == "prefix":
        merge(model)  # saved after training: the keys and values themselves
    state = load_file(folder / WEIGHTS_FILE)
    expected = set(trained_state(model))
    if set(state) != expected:
        raise ValueError(f"{folder / WEIGHTS_FILE} does not fit this model with {method!r}: missing "
                         f"{sorted(expected - set(state))[:5]}, unexpected {sorted(set(state) - expected)[:5]}.")
    model.load_state_dict(state, strict=False)
    return model
