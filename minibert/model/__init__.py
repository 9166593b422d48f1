from . import fast  # noqa: F401  (registers the fast attention kernel, "sdpa")
from .attention import ATTENTION_FUNCTIONS, eager_attention, register_attention
from .bert import BertModel, BertModelOutput, BertPreTrainedModel
