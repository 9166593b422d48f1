"""BertConfig: every size and rate of a BERT model, with the field names of Hugging Face's `config.json`.

Lecture 1.1 (what a pre-trained model is); notebook notebooks/02_attention_and_encoder.ipynb.
Every module receives the whole config, as in nanoGPT, so a reader sees one place where sizes come from.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu")


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    # Which attention kernel runs (model/attention.py): "eager" the textbook formula, "sdpa" the fast path.
    # transformers' name and values; like transformers, it is not written to config.json.
    attn_implementation: str = "sdpa"

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}): each head gets hidden_size / num_attention_heads dimensions."
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act is {self.hidden_act!r}; minibert knows {', '.join(ACTIVATIONS)}.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ----- named sizes, as in the BERT papers (the "mini"/"small" ones from Turc et al. 2019) -----
    @classmethod
    def preset(cls, name: str, **overrides) -> "BertConfig":
        """`tiny` 2x128, `mini` 4x256, `small` 4x512, `base` 12x768 (layers x hidden size)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
        layers, hidden = PRESETS[name]
        sizes = dict(num_hidden_layers=layers, hidden_size=hidden,
                     num_attention_heads=hidden // 64, intermediate_size=4 * hidden)
        return cls(**{**sizes, **overrides})

    # ----- config.json -----
    @classmethod
    def from_dict(cls, values: dict) -> "BertConfig":
        position_type = values.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"position_embedding_type {position_type!r} is not supported; minibert implements "
                             "BERT's learned absolute positions only.")
        known = {f.name for f in dataclasses.fields(cls)} - {"attn_implementation"}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_json(cls, path: str | Path) -> "BertConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config.json at {path}: a BERT folder needs config.json, the weights and vocab.txt.")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); re-download or re-save the checkpoint.") from err
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        # model_type and position_embedding_type let transformers' AutoConfig read the file too
        values = dataclasses.asdict(self)
        del values["attn_implementation"]  # a choice of how to run, not part of the model
        return {"model_type": "bert", "position_embedding_type": "absolute", **values}

    def to_json(self, path: str | Path, architecture: str = "BertModel") -> None:
        values = {"architectures": [architecture], **self.to_dict()}
        Path(path).write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")


PRESETS = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "base": (12, 768)}
