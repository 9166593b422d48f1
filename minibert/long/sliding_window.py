"""Sliding-window attention with global tokens (Longformer): memory that grows linearly with the length.

Lecture 1.3 (models for long sequences); notebook notebooks/04_long_sequences.ipynb. Matches
`LongformerSelfAttention` of Hugging Face's modeling_longformer.py to 1e-5 with the same weights
(tests/test_long_sliding_window.py); the attribute names (`query`, `key`, `value`, `query_global`, `key_global`,
`value_global`) are its state-dict names.

Each token attends to the `window // 2` tokens on each side of it and to itself (Longformer's `attention_window`
is `window`). A few chosen tokens, such as [CLS] or the question of a QA pair, are global: every token attends
to them, and they attend to every token, with their own projections `query_global`, `key_global` and
`value_global`. A token's softmax runs over the union of its window and the global tokens (a global token inside
the window counts once).

Shape legend: b batch, h heads, n tokens, d head size, w window (w // 2 on each side), c queries in one chunk,
k chunks, g global tokens (the most in any sequence of the batch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ..config import BertConfig
from ..model.attention import eager_attention, register_attention


def banded_attention(q: Tensor, k: Tensor, v: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """The plain way, for reading and drawing: each query's w + 1 keys cut out as a band. Returns the context
    (b h n d) and the band probabilities (b h n (w + 1)), column j being key i - w/2 + j.

    Memory is linear in n but the band copies each key w + 1 times; `sliding_window_attention` is the same
    computation in chunks, with a copy of each key only 1 + w / c times.
    """
    half = window // 2
    n = q.shape[2]
    k_band = F.pad(k, (0, 0, half, half)).unfold(2, window + 1, 1)  # b h n d (w+1): keys i - w/2 .. i + w/2
    v_band = F.pad(v, (0, 0, half, half)).unfold(2, window + 1, 1)
    scores = torch.einsum("bhnd,bhndw->bhnw", q, k_band) / math.sqrt(q.shape[-1])
    key_position = torch.arange(n)[:, None] - half + torch.arange(window + 1)  # n (w+1)
    outside = (key_position < 0) | (key_position >= n)  # the zeros that F.pad added are not tokens
    probs = scores.masked_fill(outside, torch.finfo(scores.dtype).min).softmax(dim=-1)
    return torch.einsum("bhnw,bhndw->bhnd", probs, v_band), probs


@register_attention("sliding_window")
def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0,
                             window: int = 512, chunk_size: int | None = None, global_keys: Tensor | None = None,
                             global_values: Tensor | None = None, global_mask: Tensor | None = None
                             ) -> tuple[Tensor, None]:
    """softmax over the keys within window // 2 of each query (and the `global_keys`, if any) of q k^T / sqrt(d)
    + mask, times the values: (b h n d), and None for the probabilities (they are never one (n x n) matrix).

    q, k, v (b h n d); mask additive (b 1 1 n) over the keys, or None; global_keys and global_values (b h g d)
    that every query sees besides its window, global_mask additive (b 1 1 g).
    The queries go in chunks of c (window // 2 by default): chunk i's queries need keys i c - w/2 to
    (i + 1) c + w/2, c + w of them. So each chunk is a small full attention, (c x (c + w)) with a mask that
    keeps the band, and all the chunks go to PyTorch's fused kernel as one batch: memory n (c + w), linear in n.
    """
    if window < 2 or window % 2:
        raise ValueError(f"window must be a positive even number (window // 2 keys on each side); got {window}.")
    if mask is not None and mask.shape[-2] != 1:
        raise ValueError(f"sliding-window attention takes a padding mask over the keys, (b 1 1 n); got "
                         f"{tuple(mask.shape)}. A per-query (b n m) mask would be n x n again: fold it into the "
                         "window, or use full attention.")
    b, h, n, d = q.shape
    half = window // 2
    c = chunk_size or half
    chunks = -(-n // c)
    extra = chunks * c - n  # queries added at the end so that n is a multiple of c; cut off at the end
    q = rearrange(F.pad(q, (0, 0, 0, extra)), "b h (k c) d -> b h k c d", c=c)
    # keys and values padded by w/2 on both sides; chunk i's c + w keys start at i c: overlapping views
    k, v = (F.pad(t, (0, 0, half, half + extra)).unfold(2, c + window, c).transpose(-1, -2) for t in (k, v))
    bias = window_bias(mask, b, n, window, c, extra, q.dtype)  # b 1 k c (c+w)
    if global_keys is not None:
        # every query also sees the g global keys: g more columns in each chunk, one softmax over both
        k, v = (torch.cat([repeat(g_, "b h g d -> b h k g d", k=chunks), t], dim=-2)
                for g_, t in ((global_keys, k), (global_values, v)))
        g = global_keys.shape[2]
        g_bias = torch.zeros(b, 1, 1, g, dtype=q.dtype) if global_mask is None else global_mask.to(q.dtype)
        bias = torch.cat([repeat(g_bias, "b 1 1 g -> b 1 k c g", k=chunks, c=c), bias], dim=-1)
    fold = "b h k c d -> (b k) h c d"  # the chunks of all sequences as one batch for the fused kernel
    context = F.scaled_dot_product_attention(rearrange(q, fold), rearrange(k, fold), rearrange(v, fold),
                                             attn_mask=rearrange(bias, fold), dropout_p=dropout_p)
    return rearrange(context, "(b k) h c d -> b h (k c) d", b=b)[:, :, :n], None


def window_bias(mask: Tensor | None, b: int, n: int, window: int, c: int, extra: int, dtype: torch.dtype) -> Tensor:
    """The additive mask of every chunk, (b 1 k c (c + w)): 0 where a query may look, the lowest float where the
    key is outside its window, outside the sequence or padding."""
    half, lowest = window // 2, torch.finfo(dtype).min
    # Row r of a chunk is query i c + r; column j is key i c - w/2 + j: within the window when r <= j <= r + w.
    row, column = torch.arange(c)[:, None], torch.arange(c + window)
    in_window = (column >= row) & (column <= row + window)  # c (c+w), the same band for every chunk
    key_bias = torch.zeros(b, 1, 1, n, dtype=dtype) if mask is None else mask.expand(b, 1, 1, n).to(dtype)
    key_bias = F.pad(key_bias, (half, half + extra), value=lowest).unfold(-1, c + window, c)  # b 1 1 k (c+w)
    return rearrange(key_bias, "b 1 1 k w -> b 1 k 1 w").masked_fill(~in_window, lowest)


class LongformerSelfAttention(nn.Module):
    """Sliding-window attention with global tokens, in place of a BERT layer's `attention.self`.

    Which tokens are global is a per-batch input, as in transformers: `model(input_ids, attention_mask,
    global_attention_mask=...)`, (b n) with 1 for the global tokens; BertModel hands it to every layer.
    """

    def __init__(self, config: BertConfig, window: int, chunk_size: int | None = None):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.window, self.chunk_size = window, chunk_size
        self.dropout_p = config.attention_probs_dropout_prob
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        # the global tokens' own projections: what a token looks for when it reads the whole sequence differs
        # from what it looks for among its neighbours
        self.query_global = nn.Linear(config.hidden_size, config.hidden_size)
        self.key_global = nn.Linear(config.hidden_size, config.hidden_size)
        self.value_global = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: Tensor, mask: Tensor | None = None, output_attentions: bool = False,
                global_attention_mask: Tensor | None = None, **options) -> tuple[Tensor, None]:
        """x (b n (h d)); mask additive (b 1 1 n) or None; global_attention_mask (b n), 1 = global token, or None.
        Returns (context (b n (h d)), None): the attention maps are never one (n x n) matrix."""
        if output_attentions:
            raise ValueError("sliding-window attention has no (n x n) attention maps to return; call the model "
                             "with output_attentions=False, or draw the band with banded_attention (this module).")
        b, n, _ = x.shape
        split = "b n (h d) -> b h n d"
        q, k, v = (rearrange(f(x), split, h=self.num_heads) for f in (self.query, self.key, self.value))
        p = self.dropout_p if self.training else 0.0
        options = dict(window=self.window, chunk_size=self.chunk_size)
        is_global = global_attention_mask
        if is_global is None or not is_global.any():
            context, _ = sliding_window_attention(q, k, v, mask, p, **options)
            return zero_padding(rearrange(context, "b h n d -> b n (h d)"), mask), None
        is_global = is_global.bool()
        if is_global.shape != (b, n):
            raise ValueError(f"global_attention_mask must be (batch, seq_len) = {(b, n)}, as input_ids; got "
                             f"{tuple(is_global.shape)}.")
        lowest = torch.finfo(x.dtype).min
        padding = torch.zeros(b, 1, 1, n, dtype=x.dtype) if mask is None else mask.expand(b, 1, 1, n).to(x.dtype)

        # Local queries: their window without the global tokens (those come once, as extra keys every query sees)
        window_mask = padding.masked_fill(is_global[:, None, None, :], lowest)
        slots = global_slots(is_global)
        global_keys, global_values = (gather_tokens(t, slots.index) for t in (k, v))
        global_mask = torch.zeros(b, 1, 1, slots.index.shape[1], dtype=x.dtype).masked_fill(
            ~slots.valid[:, None, None, :], lowest)
        context, _ = sliding_window_attention(q, k, v, window_mask, p, global_keys=global_keys,
                                              global_values=global_values, global_mask=global_mask, **options)

        # Global queries: full attention over every (non-padding) token, with the global projections
        x_global = torch.gather(x, 1, slots.index[..., None].expand(-1, -1, x.shape[-1]))  # b g (h d)
        q_g = rearrange(self.query_global(x_global), split, h=self.num_heads)
        k_g, v_g = (rearrange(f(x), split, h=self.num_heads) for f in (self.key_global, self.value_global))
        global_context, _ = eager_attention(q_g, k_g, v_g, padding, p)  # b h g d
        rows, positions = is_global.nonzero(as_tuple=True)  # row-major: the same order as the valid slots
        context = context.transpose(1, 2).clone()  # b n h d
        context[rows, positions] = global_context.transpose(1, 2)[slots.valid]
        return zero_padding(rearrange(context, "b n h d -> b n (h d)"), mask), None


def zero_padding(context: Tensor, mask: Tensor | None) -> Tensor:
    """Zeros at the padded queries of (b n f), as transformers' Longformer gives (nothing reads them)."""
    return context if mask is None else context * (mask[:, 0, 0, :, None] == 0)


@dataclass
class GlobalSlots:
    """The global tokens of each sequence, in order, padded to the batch's largest count g."""
    index: Tensor  # b g: their positions (0 in unused slots)
    valid: Tensor  # b g: False in unused slots


def global_slots(is_global: Tensor) -> GlobalSlots:
    counts = is_global.sum(1)
    g = int(counts.max())
    # a stable sort puts each row's global positions first, in their order
    index = torch.sort(is_global.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :g]
    valid = torch.arange(g) < counts[:, None]
    return GlobalSlots(index.masked_fill(~valid, 0), valid)


def gather_tokens(t: Tensor, index: Tensor) -> Tensor:
    """t (b h n d), index (b g) -> (b h g d)."""
    return torch.gather(t, 2, index[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[-1]))


def use_sliding_window(model: nn.Module, window: int, chunk_size: int | None = None) -> nn.Module:
    """Swap every BERT layer's `attention.self` for a LongformerSelfAttention with the same query, key and value
    weights; the global projections start as copies of them, as Longformer's did from RoBERTa. In place; returns
    the model. Then `model(input_ids, attention_mask, global_attention_mask=...)` says which tokens are global."""
    encoder = model.encoder if hasattr(model, "encoder") else getattr(model, model.base_model_prefix).encoder
    for layer in encoder.layer:
        old = layer.attention.self
        new = LongformerSelfAttention(model.config, window, chunk_size)
        for name in ("query", "key", "value"):
            getattr(new, name).load_state_dict(getattr(old, name).state_dict())
            getattr(new, f"{name}_global").load_state_dict(getattr(old, name).state_dict())
        layer.attention.self = new.to(old.query.weight.device).train(old.training)
    return model


def extend_positions(model: nn.Module, max_position_embeddings: int) -> nn.Module:
    """Grow the position table to `max_position_embeddings` rows by repeating the pre-trained rows, as Longformer
    initialised its 4,096 positions from RoBERTa's 512: each copy keeps the local structure (neighbouring rows
    stay neighbours), so a sliding window reads position 700 much as it read position 188. In place, config
    included; returns the model. Fine-tuning is still needed to make use of the longer input."""
    base = model if hasattr(model, "embeddings") else getattr(model, model.base_model_prefix)
    old = base.embeddings.position_embeddings
    if max_position_embeddings < old.num_embeddings:
        raise ValueError(f"the table has {old.num_embeddings} positions already; asked for "
                         f"{max_position_embeddings}. extend_positions only grows it.")
    rows = torch.arange(max_position_embeddings) % old.num_embeddings
    new = nn.Embedding(max_position_embeddings, old.embedding_dim).to(old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight[rows])
    base.embeddings.position_embeddings = new
    model.config.max_position_embeddings = max_position_embeddings
    return model


def from_longformer_state_dict(state_dict: dict[str, Tensor], pad_token_id: int) -> dict[str, Tensor]:
    """transformers' LongformerModel weights -> a minibert BertModel's after `use_sliding_window`.

    The names are BERT's already; only the positions differ. Longformer took RoBERTa's embeddings, whose position
    ids start at pad_token_id + 1 (create_position_ids_from_input_ids), so row pad_token_id + 1 of its table is
    minibert's position 0: the rows before it go, and the minibert config has that many fewer positions. The same
    outputs for right-padded batches, the only kind minibert's tokenizer makes.
    """
    state = {name.removeprefix("longformer."): weight for name, weight in state_dict.items()}
    state["embeddings.position_embeddings.weight"] = state["embeddings.position_embeddings.weight"][pad_token_id + 1:]
    state.pop("embeddings.position_ids", None)
    return state
