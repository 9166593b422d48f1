"""BERT's tokenizer, from scratch: the lesson (basic), words (pretokenize), WordPiece pieces (wordpiece), speed
(fast), vocabularies (trainer)."""
from .basic import BasicWordPieceTokenizer
from .trainer import train_wordpiece
from .wordpiece import Encoding, WordPieceTokenizer

__all__ = ["BasicWordPieceTokenizer", "Encoding", "WordPieceTokenizer", "train_wordpiece"]
