"""BERT's tokenizer, from scratch: words (pretokenize), WordPiece pieces (wordpiece), vocabularies (trainer)."""
from .trainer import train_wordpiece
from .wordpiece import Encoding, WordPieceTokenizer

__all__ = ["Encoding", "WordPieceTokenizer", "train_wordpiece"]
