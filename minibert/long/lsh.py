"""Hashing attention (Reformer): each token attends to the tokens that a locality-sensitive hash puts near it.

Lecture 1.3 (models for long sequences); notebook notebooks/04_long_sequences.ipynb. The mechanism of
`LSHSelfAttention` in Hugging Face's modeling_reformer.py (Kitaev et al. 2020); no parity test with it, since
its random rotations come from its own random stream: tests/test_long_lsh.py proves the properties instead.

Softmax is dominated by the few keys closest to the query, so attend to those only. With a shared query/key
projection (keys are the queries, normalised to unit length) a query's closest keys are the vectors closest to
it, and a random rotation R followed by argmax([xR, -xR]) gives close vectors the same bucket with high
probability. One hash round:
  1. bucket every token, and sort the tokens by (bucket, position);
  2. cut the sorted sequence into chunks of c; each chunk's queries attend to the keys of their own chunk and of
     the previous one (a bucket may straddle two chunks): n x 2c scores, linear in n;
  3. a token does not attend to itself (its own key would win: q.q/|q| is the largest score), unless nothing
     else is there: its score is set to -1e5 rather than removed, as in Reformer.
Several rounds with independent rotations, each giving an output and the log of its softmax denominator, are
combined as one softmax over the union of the keys they saw: a key seen in c of the rounds has log(c)
subtracted from its score in each (Reformer's duplicate correction), so with enough rounds the output is full
attention.
No mask between buckets inside a chunk (as Reformer's implementations): a key of a neighbouring bucket in the
same chunk is attended to, which only adds keys.

Shape legend: b batch, h heads, n tokens, d head size, r hash rounds, k chunks, c tokens in a chunk, u buckets.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import BertConfig
from ..model.attention import register_attention

SELF_SCORE = -1e5  # Reformer's: a token attends to itself only when no other key is there


def hash_buckets(x: Tensor, buckets: int, rounds: int, generator: torch.Generator | None = None) -> Tensor:
    """Angular LSH: (b h n d) -> bucket ids (b h r n) in [0, buckets), from `rounds` random rotations."""
    if buckets % 2 and buckets != 1:
        raise ValueError(f"buckets must be even (argmax over xR and -xR) or 1; got {buckets}.")
    if buckets == 1:
        return torch.zeros(*x.shape[:2], rounds, x.shape[2], dtype=torch.long)
    rotations = torch.randn(x.shape[-1], rounds, buckets // 2, generator=generator).to(x.dtype)  # d r u/2
    rotated = torch.einsum("bhnd,dru->bhrnu", x, rotations)
    return torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)


@register_attention("lsh")
def lsh_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0,
                  buckets: int | None = None, rounds: int = 2, chunk_size: int = 64,
                  generator: torch.Generator | None = None) -> tuple[Tensor, None]:
    """Reformer's LSH attention with shared query/key: (b h n d) context, and None for the probabilities.

    q (b h n d) is also the key (pass k = q: Reformer has one projection for both); v (b h n d); mask additive
    (b 1 1 n) over the keys or None. `buckets` defaults to about n / chunk_size (even), so that a bucket fills a
    chunk on average; `generator` seeds the rotations.
    """
    if k is not q and not torch.equal(k, q):
        raise ValueError("LSH attention shares one projection for queries and keys: call it with k = q (the "
                         "keys are the queries normalised to unit length).")
    if mask is not None and mask.shape[-2] != 1:
        raise ValueError(f"LSH attention takes a padding mask over the keys, (b 1 1 n); got {tuple(mask.shape)}.")
    b, h, n, d = q.shape
    c = min(chunk_size, n)
    chunks = -(-n // c)
    if buckets is None:
        buckets = max(2, chunks + chunks % 2)
    keys = F.normalize(q, dim=-1)  # Reformer's: unit keys, so the scores are q . k / |k| (no 1 / sqrt(d))
    bucket = hash_buckets(keys, buckets, rounds, generator)  # b h r n
    extra = chunks * c - n  # positions added at the end so that n is a multiple of c: never attended to
    position = torch.arange(n + extra)
    bucket = F.pad(bucket, (0, extra), value=buckets)  # after every real bucket: they sort to the end
    order = (bucket * (n + extra) + position).argsort(dim=-1)  # b h r n': sorted by bucket, then position
    key_bias = torch.zeros(b, n) if mask is None else mask.expand(b, 1, 1, n)[:, 0, 0].to(q.dtype)
    key_bias = F.pad(key_bias, (0, extra), value=torch.finfo(q.dtype).min)  # b n'

    def sort(t: Tensor) -> Tensor:  # b h n' d -> b h r k c d, the tokens in each round's sorted order, chunked
        t = t[:, :, None].expand(-1, -1, rounds, -1, -1).gather(3, order[..., None].expand(-1, -1, -1, -1, d))
        return rearrange(t, "b h r (k c) d -> b h r k c d", c=c)

    def with_previous(t: Tensor) -> Tensor:  # b h r k c ... -> b h r k 2c ...: each chunk's keys, then the previous'
        return t if chunks == 1 else torch.cat([t, t.roll(1, dims=3)], dim=4)

    pad = (0, 0, 0, extra)
    q_sorted, k_sorted, v_sorted = sort(F.pad(q, pad)), sort(F.pad(keys, pad)), sort(F.pad(v, pad))
    q_position = rearrange(order, "b h r (k c) -> b h r k c", c=c)
    k_position = with_previous(q_position)                                             # b h r k c'
    scores = q_sorted @ with_previous(k_sorted).transpose(-1, -2)                       # b h r k c c'
    scores = scores + key_bias[torch.arange(b)[:, None, None, None, None], k_position][..., None, :]
    self_pair = q_position[..., :, None] == k_position[..., None, :]
    scores = scores.masked_fill(self_pair, SELF_SCORE)
    if rounds > 1:
        scores = scores - times_seen(order, q_position, k_position, c).log()

    denominator = scores.logsumexp(dim=-1, keepdim=True)  # b h r k c 1: log of each round's softmax denominator
    probs = F.dropout((scores - denominator).exp(), dropout_p)
    context = probs @ with_previous(v_sorted)  # b h r k c d
    # back to positions: each round's output, and how much of the union's denominator its keys hold
    unsort = order.argsort(dim=-1)
    context = rearrange(context, "b h r k c d -> b h r (k c) d").gather(3, unsort[..., None].expand(-1, -1, -1, -1, d))
    denominator = rearrange(denominator, "b h r k c 1 -> b h r (k c)").gather(3, unsort)
    weight = denominator.softmax(dim=2)  # b h r n': round r's share of the union's softmax denominator
    return (weight[..., None] * context).sum(dim=2)[:, :, :n], None


def times_seen(order: Tensor, q_position: Tensor, k_position: Tensor, c: int) -> Tensor:
    """For each (query, key) pair a round looks at, (b h r k c c'): in how many rounds the query's chunk looks at
    that key (at least 1: this one). A key is looked at from its own chunk and the next one."""
    rounds, chunks = order.shape[2], order.shape[3] // c
    chunk_of = (order.argsort(dim=-1) // c).to(torch.int16)  # b h r n: in each round, the chunk of each position
    count = torch.zeros(*q_position.shape, k_position.shape[-1])
    flat = "b h r k c -> b h (r k c)"
    for other in range(rounds):
        q_chunk = chunk_of[:, :, other].gather(2, rearrange(q_position, flat)).view(q_position.shape)  # b h r k c
        k_chunk = chunk_of[:, :, other].gather(2, rearrange(k_position, flat)).view(k_position.shape)  # b h r k c'
        gap = q_chunk[..., :, None] - k_chunk[..., None, :]  # b h r k c c'
        # the same chunk, or the previous one (chunk 0's previous is the last)
        count += (gap == 0) | (gap == 1) | (gap == 1 - chunks) if chunks > 1 else 1
    return count


class LSHSelfAttention(nn.Module):
    """Hashing attention in place of a BERT layer's `attention.self`: one projection `query_key` for queries and
    keys (Reformer's name), `value`; the rotations are drawn afresh each call unless `seed` is set."""

    def __init__(self, config: BertConfig, buckets: int | None = None, rounds: int = 2, chunk_size: int = 64,
                 seed: int | None = None):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.query_key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.options = dict(buckets=buckets, rounds=rounds, chunk_size=chunk_size)
        self.seed = seed
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: Tensor, mask: Tensor | None = None, output_attentions: bool = False,
                **options) -> tuple[Tensor, None]:
        """x (b n (h d)), mask additive (b 1 1 n) or None -> ((b n (h d)), None)."""
        if output_attentions:
            raise ValueError("LSH attention has no (n x n) attention maps to return; call the model with "
                             "output_attentions=False.")
        qk = rearrange(self.query_key(x), "b n (h d) -> b h n d", h=self.num_heads)
        v = rearrange(self.value(x), "b n (h d) -> b h n d", h=self.num_heads)
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        context, _ = lsh_attention(qk, qk, v, mask, self.dropout_p if self.training else 0.0, generator=generator,
                                   **self.options)
        return rearrange(context, "b h n d -> b n (h d)"), None


def use_lsh_attention(model: nn.Module, **options) -> nn.Module:
    """Swap every BERT layer's `attention.self` for an LSHSelfAttention whose `query_key` starts as the query
    projection (a pre-trained BERT has separate query and key projections; a shared one must be trained, so this
    is a starting point, not the same model). In place; returns the model."""
    encoder = model.encoder if hasattr(model, "encoder") else getattr(model, model.base_model_prefix).encoder
    for layer in encoder.layer:
        old = layer.attention.self
        new = LSHSelfAttention(model.config, **options)
        new.query_key.load_state_dict(old.query.state_dict())
        new.value.load_state_dict(old.value.state_dict())
        layer.attention.self = new.to(old.query.weight.device).train(old.training)
    return model
