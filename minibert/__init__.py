"""minibert: BERT rebuilt from scratch in readable pure PyTorch. The course map is in README.md."""
from .config import BertConfig
from .model import BertModel, BertModelOutput, BertPreTrainedModel

__all__ = ["BertConfig", "BertModel", "BertModelOutput", "BertPreTrainedModel"]
