"""BertModel: embeddings -> Transformer encoder -> pooler. One contextualized vector per input token.

Lecture 1.1 (what a pre-trained model is: contextualized word embeddings); notebook
notebooks/02_attention_and_encoder.ipynb. Matches Hugging Face's `transformers.BertModel` (modeling_bert.py)
to 1e-5 with real weights: see tests/test_model_parity.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import checkpoint
from ..config import BertConfig
from .attention import additive_mask
from .embeddings import BertEmbeddings
from .encoder import BertEncoder
from .fast.packing import packed_encoder_forward, packing_applies


@dataclass
class BertModelOutput:
    last_hidden_state: Tensor                    # b n (h d): one vector per token, after the last layer
    pooler_output: Tensor | None = None          # b (h d): tanh(dense([CLS] vector)), for sentence tasks
    hidden_states: tuple[Tensor, ...] | None = None  # embeddings, then every layer's output
    attentions: tuple[Tensor, ...] | None = None     # every layer's b h n n attention probabilities


class BertPreTrainedModel(nn.Module):
    """What every minibert model shares: weight initialisation, and loading/saving Hugging Face folders."""

    base_model_prefix = "bert"              # the name of the encoder inside a model with a head
    tied_weights: dict[str, str] = {}       # weight name -> the weight it shares storage with (not saved twice)
    fresh_prefixes: tuple[str, ...] = ()    # task heads a pre-trained checkpoint cannot contain
    ignored_prefixes: tuple[str, ...] = ("cls.",)  # checkpoint heads this model does not use

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config

    def init_weights(self) -> None:
        self.apply(self._init_module)

    def _init_module(self, module: nn.Module) -> None:
        std = self.config.initializer_range  # BERT's truncated-normal-like init: N(0, 0.02)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                nn.init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **config_overrides):
        """Load any Hugging Face BERT folder. `config_overrides` change config fields, e.g. hidden_dropout_prob=0."""
        folder = Path(folder)
        config = BertConfig.from_json(folder / "config.json")
        config = dataclasses.replace(config, **config_overrides)
        _check_vocab_file(folder, config)
        model = cls(config)
        model.fresh_weights = checkpoint.load_weights(model, checkpoint.read_state_dict(folder))
        return model.eval()  # as transformers does: dropout stays off until you call .train()

    def save_pretrained(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write config.json and model.safetensors; transformers' `from_pretrained(folder)` reads them."""
        folder = Path(folder)
        checkpoint.refuse_to_overwrite(folder / "config.json", overwrite)
        state = {k: v for k, v in self.state_dict().items() if k not in self.tied_weights}
        checkpoint.write_weights(state, folder, overwrite)
        with checkpoint.atomic_path(folder / "config.json") as tmp:
            self.config.to_json(tmp, architecture=type(self).__name__)
        return folder

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _check_vocab_file(folder: Path, config: BertConfig) -> None:
    vocab = folder / "vocab.txt"
    if vocab.is_file():
        with vocab.open(encoding="utf-8") as lines:
            size = sum(1 for _ in lines)
        if size > config.vocab_size:
            raise ValueError(f"{vocab} has {size} tokens but config.json says vocab_size={config.vocab_size}: "
                             "the tokenizer would produce ids the model has no embedding for. The vocab.txt "
                             "belongs to another checkpoint; use the one that came with these weights.")


class BertPooler(nn.Module):
    """The [CLS] vector through dense + tanh: the sentence-level summary that NSP was trained on."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertModel(BertPreTrainedModel):
    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False, **options) -> BertModelOutput:
        """input_ids (b n); attention_mask (b n) 1 = token, 0 = padding, or (b n n) saying which tokens each token
        may see (a causal or sequence-to-sequence mask); token_type_ids (b n) 0 / 1 for the first / second
        segment. `options` go to the attention kernel (model/attention.py)."""
        check_inputs(self.config, input_ids, attention_mask, token_type_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # one sentence: every token is in segment A
        x = self.embeddings(input_ids, token_type_ids)
        if not options and packing_applies(self.encoder, attention_mask, output_attentions):
            # The fast path: the same layers, run on the real tokens only (model/fast/packing.py).
            x, hidden_states = packed_encoder_forward(self.encoder, x, attention_mask, output_hidden_states)
            attentions = None
        else:
            mask = additive_mask(attention_mask, x.dtype) if attention_mask is not None else None
            x, hidden_states, attentions = self.encoder(x, mask, output_hidden_states, output_attentions, **options)
        pooled = self.pooler(x) if self.pooler is not None else None
        return BertModelOutput(x, pooled, hidden_states, attentions)


def check_inputs(config: BertConfig, input_ids: Tensor, attention_mask: Tensor | None,
                 token_type_ids: Tensor | None) -> None:
    """The mistakes students make most, caught before they turn into an index error deep inside a layer."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, seq_len); got shape {tuple(input_ids.shape)}. "
                         "For a single sequence, add the batch dimension: input_ids[None].")
    if input_ids.dtype not in (torch.long, torch.int32):
        raise TypeError(f"input_ids must be integer token ids (torch.long); got {input_ids.dtype}.")
    n = input_ids.shape[1]
    if n > config.max_position_embeddings:
        raise ValueError(f"the sequence has {n} tokens but the position table has {config.max_position_embeddings} "
                         "rows. Truncate the text (tokenizer(..., truncation=True, max_length="
                         f"{config.max_position_embeddings})) or split it into windows (lecture 1.3).")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
        raise ValueError(f"token ids must lie in [0, {config.vocab_size}); found ids from {int(input_ids.min())} to "
                         f"{int(input_ids.max())}. The tokenizer's vocabulary does not match this model: load "
                         "both from the same checkpoint folder.")
    if attention_mask is not None and attention_mask.dim() == 3:
        b, n = input_ids.shape
        if attention_mask.shape != (b, n, n):
            raise ValueError(f"a 3-D attention_mask says which tokens each token may see: shape (batch, n, n) = "
                             f"{(b, n, n)}; got {tuple(attention_mask.shape)}.")
        attention_mask = None  # checked
    for name, other in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if other is not None and other.shape != input_ids.shape:
            raise ValueError(f"{name} must have the shape of input_ids {tuple(input_ids.shape)}; got "
                             f"{tuple(other.shape)}. Take both from the same tokenizer call (with padding=True).")
    if token_type_ids is not None and token_type_ids.numel() and (
            token_type_ids.min() < 0 or token_type_ids.max() >= config.type_vocab_size):
        raise ValueError(f"token_type_ids must lie in [0, {config.type_vocab_size}): 0 for the first segment, "
                         f"1 for the second; found {int(token_type_ids.max())}.")
