"""ALBERT (Lan et al. 2019) as options of minibert's BERT: a factorised embedding and layers that share weights.

Lecture 1.2 (making BERT smaller: architecture design); notebook notebooks/05_smaller.ipynb. Matches
`transformers.AlbertModel` (modeling_albert.py) to 1e-5: see tests/test_albert.py.

Two ideas, each a few lines on top of BERT's own modules (model/embeddings.py, model/encoder.py):
- Factorised embedding: the vocabulary is embedded at a small width E, then projected to the hidden size H,
  V x E + E x H numbers instead of V x H (V = 30522, H = 768, E = 128: 4.0M instead of 23.4M). The token
  table only has to say which word it is; the context comes later, in the layers, which are H wide.
- Cross-layer sharing: the L layers are split into `num_hidden_groups` runs of consecutive layers, and all
  layers of a run use the same weights (1 group: one layer's weights applied L times, ALBERT's default).
  `sharing` says what a run shares: "all" (ALBERT), "attention" or "ffn" only (the paper's shared-attention and
  shared-FFN variants), or "none" (plain BERT layers). The model is as slow as BERT of the same depth: sharing
  saves memory and bytes on disk, not compute.

The modules are minibert's (BertEmbeddings at width E, BertLayer); a shared module is the same Python object
in several places of `encoder.layer`, so an optimiser sees it once and its gradient sums over the layers that
use it. ALBERT's checkpoint names are its own: `ALBERT_LAYER_NAMES` is the whole mapping. ALBERT adds no dropout
after its feed-forward (BERT does); ALBERT's checkpoints train with dropout 0, where the two agree.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from .. import checkpoint
from ..config import BertConfig
from ..model.bert import BertModel, BertPooler, BertPreTrainedModel
from ..model.embeddings import BertEmbeddings
from ..model.encoder import BertEncoder, BertLayer

SHARING = ("all", "attention", "ffn", "none")


@dataclass
class AlbertConfig(BertConfig):
    """BertConfig plus ALBERT's fields (transformers' names); the defaults are albert-base-v2's."""
    vocab_size: int = 30000
    hidden_act: str = "gelu_new"               # ALBERT's GELU is the tanh approximation
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    embedding_size: int | None = 128           # E; None: no factorisation, BERT's V x H table
    num_hidden_groups: int = 1                 # runs of layers that share weights; num_hidden_layers: none shared
    inner_group_num: int = 1                   # transformers' layers per group; minibert knows 1
    sharing: str = "all"                       # what the layers of a group share (minibert's; not in config.json)

    def __post_init__(self):
        super().__post_init__()
        if self.sharing not in SHARING:
            raise ValueError(f"sharing is {self.sharing!r}; choose one of {', '.join(SHARING)}.")
        if not 1 <= self.num_hidden_groups <= self.num_hidden_layers:
            raise ValueError(f"num_hidden_groups must lie in [1, num_hidden_layers={self.num_hidden_layers}]; got "
                             f"{self.num_hidden_groups}.")
        if self.inner_group_num != 1:
            raise ValueError(f"inner_group_num is {self.inner_group_num}; minibert's ALBERT has one layer per group "
                             "(inner_group_num=1, as every released ALBERT). Use num_hidden_layers for depth.")
        if self.sharing == "none":
            self.num_hidden_groups = self.num_hidden_layers  # one group per layer: nothing shared
        if self.embedding_size is not None and self.embedding_size < 1:
            raise ValueError(f"embedding_size must be a positive width or None; got {self.embedding_size}.")

    def group_of(self, layer: int) -> int:
        """Which group's weights layer `layer` uses: consecutive runs, as transformers' AlbertTransformer."""
        return layer * self.num_hidden_groups // self.num_hidden_layers

    def to_dict(self) -> dict:
        """transformers' AlbertConfig fields. Only whole-layer sharing has a transformers form."""
        values = super().to_dict()
        if self.sharing not in ("all", "none"):
            raise ValueError(f"sharing={self.sharing!r} has no transformers form (AlbertModel shares whole layers). "
                             "Save the weights with torch.save(model.state_dict(), path) instead.")
        if self.embedding_size is None:
            raise ValueError("a model without a factorised embedding (embedding_size=None) has no transformers "
                             "AlbertModel form; give it embedding_size=hidden_size to save it as ALBERT.")
        del values["sharing"]
        return {**values, "model_type": "albert"}


def _embedding_config(config: AlbertConfig) -> BertConfig:
    """The BertConfig of BERT's embedding table at width E (one 'head' so that any E passes the check)."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(BertConfig)}
    return BertConfig(**{**fields, "hidden_size": config.embedding_size, "num_attention_heads": 1})


class FactorizedEmbeddings(BertEmbeddings):
    """BERT's embeddings at width E (token + position + segment, LayerNorm, dropout), then E -> H."""

    def __init__(self, config: AlbertConfig):
        super().__init__(_embedding_config(config))
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        return self.embedding_hidden_mapping_in(super().forward(input_ids, token_type_ids))  # b n E -> b n H


def shared_layers(config: AlbertConfig) -> nn.ModuleList:
    """num_hidden_layers BertLayers in which the parts `config.sharing` names are one object per group."""
    groups = [BertLayer(config) for _ in range(config.num_hidden_groups)]
    layers = []
    for i in range(config.num_hidden_layers):
        group = groups[config.group_of(i)]
        first_of_group = i == 0 or config.group_of(i - 1) != config.group_of(i)
        if config.sharing == "all" or first_of_group:
            layer = group
        else:
            layer = BertLayer(config)  # its own weights, then the group's shared part instead of its own
            if config.sharing == "attention":
                layer.attention = group.attention
            elif config.sharing == "ffn":
                layer.intermediate, layer.output = group.intermediate, group.output
        layers.append(layer)
    return nn.ModuleList(layers)


class SharedLayersEncoder(BertEncoder):
    """BertEncoder (same forward, same fast path) over `shared_layers`."""

    def __init__(self, config: AlbertConfig):
        nn.Module.__init__(self)  # not BertEncoder's: it would build L layers only to throw most away
        self.layer = shared_layers(config)


def tied_names(module: nn.Module) -> dict[str, str]:
    """Each parameter name that repeats a parameter seen before -> the first name of that parameter."""
    first, tied = {}, {}
    for name, parameter in module.named_parameters(remove_duplicate=False):
        if id(parameter) in first:
            tied[name] = first[id(parameter)]
        else:
            first[id(parameter)] = name
    return tied


class AlbertModel(BertModel):
    """BertModel with ALBERT's options; loads and saves transformers' AlbertModel folders."""

    base_model_prefix = "albert"
    ignored_prefixes = ("predictions.", "sop_classifier.")  # AlbertForPreTraining's heads

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        BertPreTrainedModel.__init__(self, config)
        self.embeddings = FactorizedEmbeddings(config) if config.embedding_size else BertEmbeddings(config)
        self.encoder = SharedLayersEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.tied_weights = tied_names(self)  # shared layers: saved once, loaded once
        self.init_weights()
        # forward is BertModel's: embeddings -> the layers in order -> pooler

    @classmethod
    def from_pretrained(cls, folder: str | Path, **config_overrides) -> "AlbertModel":
        """Load a transformers ALBERT folder (config.json + weights); `config_overrides` change config fields."""
        folder = Path(folder)
        config = dataclasses.replace(AlbertConfig.from_json(folder / "config.json"), **config_overrides)
        model = cls(config)
        state = from_albert_names(checkpoint.read_state_dict(folder), config)
        model.fresh_weights = checkpoint.load_weights(model, state)
        return model.eval()

    def save_pretrained(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write config.json and model.safetensors in transformers' AlbertModel format."""
        folder = Path(folder)
        self.config.to_dict()  # refuses, before anything is written, a model that has no transformers form
        checkpoint.refuse_to_overwrite(folder / "config.json", overwrite)
        state = {k: v for k, v in self.state_dict().items() if k not in self.tied_weights}
        checkpoint.write_weights(to_albert_names(state, self.config), folder, overwrite)
        with checkpoint.atomic_path(folder / "config.json") as tmp:
            self.config.to_json(tmp, architecture="AlbertModel")
        return folder


# ----- the checkpoint mapping: transformers' ALBERT names <-> minibert's BERT names -----

ALBERT_LAYER_NAMES = {  # inside encoder.albert_layer_groups.{g}.albert_layers.0. <-> inside encoder.layer.{i}.
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.dense": "attention.output.dense",
    "attention.LayerNorm": "attention.output.LayerNorm",
    "ffn": "intermediate.dense",
    "ffn_output": "output.dense",
    "full_layer_layer_norm": "output.LayerNorm",
}
ALBERT_OTHER_NAMES = {
    "encoder.embedding_hidden_mapping_in": "embeddings.embedding_hidden_mapping_in",
    "pooler": "pooler.dense",
}
GROUP_PREFIX = "encoder.albert_layer_groups.{g}.albert_layers.0."


def _first_layer(config: AlbertConfig, group: int) -> int:
    return next(i for i in range(config.num_hidden_layers) if config.group_of(i) == group)


def _pairs(config: AlbertConfig) -> list[tuple[str, str]]:
    """(ALBERT name, minibert name) prefixes; a group's weights sit at the first layer that uses them."""
    pairs = list(ALBERT_OTHER_NAMES.items())
    for g in range(config.num_hidden_groups):
        i = _first_layer(config, g)
        pairs += [(GROUP_PREFIX.format(g=g) + theirs, f"encoder.layer.{i}.{ours}")
                  for theirs, ours in ALBERT_LAYER_NAMES.items()]
    return pairs


def _rename(name: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        if name.startswith(old + "."):
            return new + name[len(old):]
    return name  # embeddings.* are the same in both


def from_albert_names(state: dict[str, Tensor], config: AlbertConfig) -> dict[str, Tensor]:
    """A transformers ALBERT state dict (bare, or `albert.` inside a model with heads) -> minibert's names."""
    state = {k.removeprefix("albert."): v for k, v in state.items()}
    return {_rename(k, _pairs(config)): v for k, v in state.items()}


def to_albert_names(state: dict[str, Tensor], config: AlbertConfig) -> dict[str, Tensor]:
    pairs = [(ours, theirs) for theirs, ours in _pairs(config)]
    return {_rename(k, pairs): v for k, v in state.items()}
