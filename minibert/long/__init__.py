"""Models for long sequences (lecture 1.3; notebook notebooks/04_long_sequences.ipynb): Longformer's sliding window
with global tokens, Transformer-XL's segment recurrence, Reformer's hashing attention and reversible layers.
Importing registers the attention kernels "sliding_window" and "lsh"."""
from .lsh import LSHSelfAttention, lsh_attention, use_lsh_attention
from .reversible import ReversibleEncoder
from .recurrence import RecurrentEncoder, RecurrentOutput, RelativeSelfAttention
from .sliding_window import LongformerSelfAttention, extend_positions, sliding_window_attention, use_sliding_window
