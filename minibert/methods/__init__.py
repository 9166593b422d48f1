"""The ways to fine-tune (lecture 2.3): frozen features, full, adapters, weighted features, LoRA, BitFit, prefix."""
from .apply import METHODS, apply, count_parameters, load_trained, merge, save_trained, unmerge
from .peft_format import load_peft_lora, save_peft_lora

__all__ = ["METHODS", "apply", "count_parameters", "merge", "unmerge", "save_trained", "load_trained",
           "save_peft_lora", "load_peft_lora"]
