"""Skip the padding: the model computes nothing for [PAD] positions.

Lecture 1.1 (the Transformer encoder); README, "Speed". The projections, the feed-forward, dropout and
LayerNorm treat each position on its own, so in a padded batch they would spend as much on a [PAD] as on a
word, for a result nothing reads. So the encoder packs the real tokens into rows, (b n f) -> (t f), and these
layers run on the rows. Attention, where tokens meet, gets the (b n) grid back with the padding mask, except
in inference, where it takes the rows one sequence at a time: each sequence attends over its own real tokens,
which is what the mask achieves, without the padded queries and keys (model/attention.py says why not in
training). The same idea as PyTorch's packed sequences for RNNs and as the nested-tensor fast path of
nn.TransformerEncoder.

What changes: the outputs at padded positions are zeros, as in that fast path (transformers computes
something there, which nothing uses). The real tokens' outputs are the same, to rounding.
"""
from __future__ import annotations

from torch import Tensor


class RealTokens:
    """Where the real tokens of a batch are: to pack them into rows, split the rows by sequence, and unpack
    them onto the (b n) grid again.

    A batch without padding stays on the grid: `packed` is False and pack and unpack return their input.
    """

    def __init__(self, attention_mask: Tensor | None):
        self.packed = attention_mask is not None and not bool(attention_mask.all())
        if self.packed:
            self.shape = tuple(attention_mask.shape)
            real = attention_mask.bool()
            self.index = real.flatten().nonzero().squeeze(1)  # each real token's place among the b x n positions
            self.lengths = real.sum(1).tolist()               # real tokens per sequence

    def pack(self, x: Tensor) -> Tensor:
        """(b n f) -> (t f): the t real tokens, sequence after sequence."""
        # index_select rather than x[mask]: several times faster on a CPU, forward and backward
        return x.reshape(-1, x.shape[-1]).index_select(0, self.index) if self.packed else x

    def unpack(self, rows: Tensor) -> Tensor:
        """(t f) -> (b n f), zeros at the padding."""
        if not self.packed:
            return rows
        grid = rows.new_zeros(self.shape[0] * self.shape[1], rows.shape[-1]).index_copy(0, self.index, rows)
        return grid.view(*self.shape, rows.shape[-1])

    def sequences(self, rows: Tensor) -> list[Tensor]:
        """(t f) -> one (n_i f) tensor per sequence, n_i its real tokens (0 for a sequence of padding only)."""
        return rows.split(self.lengths)


ALL_REAL = RealTokens(None)  # what the layers assume when nobody says: the (b n) grid, every token real
