"""The key/value cache: what makes generating one more token cost one position, not the whole prefix.

Lecture 2.2 (outputs: a general sequence); notebook notebooks/06_general_sequence.ipynb. The counterpart of
transformers' `EncoderDecoderCache` (a `DynamicCache` for self-attention, one for cross-attention).

A token's key and value at a layer depend only on that token and the tokens it may see. Under a causal mask it
sees only its past, so the keys and values of the prefix never change when a token is appended: compute them
once, keep them, and each step projects only the new token. Cross-attention keys and values come from the
encoder's output, which does not change at all while decoding: computed at the first step, reused after.

Shape legend: b batch (times beams), h heads, m cached positions, d head size, s source tokens.
"""
from __future__ import annotations

import torch
from torch import Tensor


class KeyValueCache:
    """Per layer: self-attention keys and values (b h m d), growing by one position per step, and the
    cross-attention keys and values of the encoder's output (b h s d), computed once."""

    def __init__(self, num_layers: int):
        self.self_attention: list[tuple[Tensor, Tensor] | None] = [None] * num_layers
        self.cross_attention: list[tuple[Tensor, Tensor] | None] = [None] * num_layers

    @property
    def length(self) -> int:
        """How many positions are cached: the position of the next token."""
        first = self.self_attention[0]
        return 0 if first is None else first[0].shape[2]

    def append(self, layer: int, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new positions' keys and values (b h n d) of one layer; returns all of them (b h m+n d)."""
        past = self.self_attention[layer]
        if past is not None:
            key, value = torch.cat([past[0], key], dim=2), torch.cat([past[1], value], dim=2)
        self.self_attention[layer] = (key, value)
        return key, value

    def reorder(self, index: Tensor, among_beams: bool = False) -> None:
        """Keep the rows `index` (b'): beam search continues some beams twice and drops others.

        `among_beams`: rows move only among the beams of one source, whose cross-attention keys and values are
        the same: those stay as they are (about a tenth of beam search's time, measured, if copied every step).
        """
        for entries in (self.self_attention,) if among_beams else (self.self_attention, self.cross_attention):
            for i, entry in enumerate(entries):
                if entry is not None:
                    entries[i] = (entry[0].index_select(0, index), entry[1].index_select(0, index))
