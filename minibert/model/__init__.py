from .bert import BertModel, BertModelOutput, BertPreTrainedModel
