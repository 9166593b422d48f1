"""minibert: BERT rebuilt from scratch in readable pure PyTorch. The course map is in README.md."""
from .config import BertConfig
from .model import BertModel, BertModelOutput, BertPreTrainedModel
from .model.heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from .model.pretraining import BertForMaskedLM, BertForPreTraining
from .tokenizer import WordPieceTokenizer
from .smaller.albert import AlbertConfig, AlbertModel  # noqa: F401  (lecture 1.2: ALBERT)

__all__ = ["BertConfig", "BertModel", "BertModelOutput", "BertPreTrainedModel", "BertForPreTraining",
           "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification",
           "BertForQuestionAnswering", "WordPieceTokenizer"]
