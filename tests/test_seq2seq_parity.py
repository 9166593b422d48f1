"""BertEncoderDecoder agrees with transformers' EncoderDecoderModel (BERT encoder + BertLMHeadModel decoder).

Lecture 2.2 (general sequence output, v1); run with `pytest -m outputs`. The reference is random and small, with
weights scaled so that the logits spread (N(0, 1/fan_in), not BERT's 0.02, under which every token scores about
the same and any model would pass), an encoder and a decoder of different sizes (so `enc_to_dec_proj` is
tested), and as its [SEP] the id that this random model writes at different steps for different sources.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert.config import BertConfig
from minibert.model.pretraining import IGNORE_INDEX
from minibert.seq2seq import BertEncoderDecoder
from minibert.seq2seq.generate import generate

pytestmark = [pytest.mark.outputs, pytest.mark.filterwarnings("ignore:Version v4.12.0:FutureWarning")]
TOL = dict(atol=1e-5, rtol=0)
START, PAD, SEP = 2, 0, 62  # SEP: this random model writes it after 2 and 9 tokens, and never for two sources


def scaled_random_weights(model, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                weight.copy_(torch.randn(weight.shape, generator=g) * 0.1 + ("LayerNorm.weight" in name))
            else:
                weight.copy_(torch.randn(weight.shape, generator=g) / weight.shape[-1] ** 0.5)


def source_batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 99, (4, 7), generator=g)
    attention_mask = torch.ones(4, 7, dtype=torch.long)
    attention_mask[1, 5:] = 0
    attention_mask[2, 3:] = 0
    return input_ids * attention_mask, attention_mask


@pytest.fixture(scope="module")
def reference(transformers_lib, tmp_path_factory):
    """transformers' model and the folder it saved."""
    T = transformers_lib
    sizes = dict(vocab_size=99, max_position_embeddings=64)
    encoder = T.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, **sizes)
    decoder = T.BertConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=2, intermediate_size=30,
                           is_decoder=True, add_cross_attention=True, **sizes)
    config = T.EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder, decoder_start_token_id=START,
                                                                 pad_token_id=PAD)
    torch.manual_seed(0)
    theirs = T.EncoderDecoderModel(config=config).eval()
    scaled_random_weights(theirs)
    folder = tmp_path_factory.mktemp("reference")
    theirs.save_pretrained(folder)
    return theirs, folder


@pytest.fixture(scope="module")
def ours(reference):
    model = BertEncoderDecoder.from_pretrained(reference[1])
    model.config.eos_token_id = SEP
    return model


def test_folder_from_transformers_loads_every_weight(ours, reference):
    assert ours.fresh_weights == []
    assert ours.config.decoder_start_token_id == START and ours.config.pad_token_id == PAD
    theirs_state = reference[0].state_dict()
    for name, weight in ours.state_dict().items():
        assert torch.equal(weight, theirs_state[name]), name
    assert ours.decoder.cls.predictions.decoder.weight is ours.decoder.bert.embeddings.word_embeddings.weight


def test_teacher_forcing_logits_and_loss_match_on_padded_batches(ours, reference):
    input_ids, attention_mask = source_batch()
    labels = torch.randint(5, 99, (4, 6), generator=torch.Generator().manual_seed(2))
    labels[0, 4:] = IGNORE_INDEX  # targets of different lengths: the decoder inputs get [PAD] there
    labels[2, 2:] = IGNORE_INDEX
    with torch.no_grad():
        mine = ours(input_ids, attention_mask, labels=labels)
        theirs = reference[0](input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    real = labels != IGNORE_INDEX
    assert theirs.logits[real].std() > 1.0  # logits that differ from token to token: the comparison means something
    assert_close(mine.logits[real], theirs.logits[real], **TOL)
    assert_close(mine.loss, theirs.loss, **TOL)


def test_step_by_step_with_the_cache_matches_the_whole_prefix(ours, reference):
    input_ids, attention_mask = source_batch()
    decoder_input_ids = torch.randint(5, 99, (4, 6), generator=torch.Generator().manual_seed(3))
    decoder_input_ids[:, 0] = START
    with torch.no_grad():
        full = reference[0](input_ids=input_ids, attention_mask=attention_mask,
                            decoder_input_ids=decoder_input_ids).logits
        state = ours.start_generation(input_ids, attention_mask, use_cache=True)
        steps = [ours.next_token_logits(state, decoder_input_ids[:, :t + 1]) for t in range(6)]
    assert state.cache.length == 6  # each step added one position, the prefix was not run again
    assert_close(torch.stack(steps, dim=1), full, **TOL)


def test_textbook_attention_gives_the_same_logits(reference):
    """attn_implementation="eager" (the formula, model/attention.py) instead of the fused kernel: same numbers."""
    eager = BertEncoderDecoder.from_pretrained(reference[1], attn_implementation="eager")
    assert eager.decoder.config.attn_implementation == "eager"
    input_ids, attention_mask = source_batch()
    decoder_input_ids = torch.randint(5, 99, (4, 6), generator=torch.Generator().manual_seed(3))
    decoder_input_ids[:, 0] = START
    with torch.no_grad():
        full = reference[0](input_ids=input_ids, attention_mask=attention_mask,
                            decoder_input_ids=decoder_input_ids).logits
        mine = eager(input_ids, attention_mask, decoder_input_ids=decoder_input_ids).logits
        state = eager.start_generation(input_ids, attention_mask, use_cache=True)
        steps = [eager.next_token_logits(state, decoder_input_ids[:, :t + 1]) for t in range(6)]
    assert_close(mine, full, **TOL)
    assert_close(torch.stack(steps, dim=1), full, **TOL)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_gives_transformers_ids(ours, reference, use_cache):
    input_ids, attention_mask = source_batch()
    with torch.no_grad():
        theirs = reference[0].generate(input_ids, attention_mask=attention_mask, num_beams=1, do_sample=False,
                                       max_new_tokens=12, decoder_start_token_id=START, eos_token_id=SEP,
                                       pad_token_id=PAD)
    mine = generate(ours, input_ids, attention_mask, max_new_tokens=12, use_cache=use_cache).sequences
    assert torch.equal(mine, theirs)
    ends = [row.tolist().index(SEP) if SEP in row.tolist() else None for row in mine]
    assert ends == [None, None, 2, 9]  # sequences finishing at different lengths, two running to max_new_tokens


@pytest.mark.parametrize("num_beams, length_penalty", [(3, 1.0), (2, 0.0), (4, 2.0), (3, -1.0)])
def test_beam_search_gives_transformers_ids_and_scores(ours, reference, num_beams, length_penalty):
    """Same ids and scores. One difference: after a finished hypothesis transformers fills with [SEP] when
    pad_token_id is 0 (`pad_token_id or eos_token_id` in its beam search), minibert with [PAD] as greedy does."""
    input_ids, attention_mask = source_batch()
    with torch.no_grad():
        theirs = reference[0].generate(input_ids, attention_mask=attention_mask, num_beams=num_beams,
                                       do_sample=False, max_new_tokens=12, length_penalty=length_penalty,
                                       early_stopping=True, decoder_start_token_id=START, eos_token_id=SEP,
                                       pad_token_id=PAD, output_scores=True, return_dict_in_generate=True)
    mine = generate(ours, input_ids, attention_mask, max_new_tokens=12, num_beams=num_beams,
                    length_penalty=length_penalty)
    assert mine.sequences.shape == theirs.sequences.shape
    written = torch.ones_like(mine.sequences, dtype=torch.bool)
    for row, tokens in enumerate(mine.sequences.tolist()):
        if SEP in tokens:
            written[row, tokens.index(SEP) + 1:] = False
    assert torch.equal(mine.sequences[written], theirs.sequences[written])
    assert (mine.sequences[~written] == PAD).all() and (theirs.sequences[~written] == SEP).all()
    assert_close(mine.scores, theirs.sequences_scores, **TOL)


def test_saved_folder_is_read_by_transformers(ours, transformers_lib, tmp_path):
    ours.save_pretrained(tmp_path)
    theirs = transformers_lib.EncoderDecoderModel.from_pretrained(tmp_path).eval()
    assert theirs.config.decoder_start_token_id == START and theirs.config.decoder.add_cross_attention
    input_ids, attention_mask = source_batch()
    decoder_input_ids = torch.full((4, 3), START)
    with torch.no_grad():
        mine = ours(input_ids, attention_mask, decoder_input_ids=decoder_input_ids).logits
        ref = theirs(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert_close(mine, ref, **TOL)


def test_warm_start_takes_every_weight_but_cross_attention_from_bert(checkpoint_dir, transformers_lib, tmp_path):
    """BERT2BERT: encoder and decoder from the same checkpoint, as transformers' from_encoder_decoder_pretrained;
    saved, the folder loads into transformers with the same logits."""
    model = BertEncoderDecoder.from_encoder_pretrained(checkpoint_dir)
    layers = model.config.decoder.num_hidden_layers
    fresh = {name.split(".layer.")[1].split(".")[1] for name in model.decoder.fresh_weights if ".layer." in name}
    assert fresh == {"crossattention"}
    crossattention = [name for name in model.decoder.fresh_weights if "crossattention" in name]
    assert len(crossattention) == 10 * layers  # per layer: query, key, value, dense, LayerNorm; weight and bias
    encoder, decoder = model.encoder.state_dict(), model.decoder.state_dict()
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
                 f"encoder.layer.{layers - 1}.output.dense.weight"):
        assert torch.equal(decoder[f"bert.{name}"], encoder[name])
    assert (model.config.decoder_start_token_id, model.config.eos_token_id) == (101, 102)  # [CLS], [SEP]

    model.save_pretrained(tmp_path)
    theirs = transformers_lib.EncoderDecoderModel.from_pretrained(tmp_path).eval()
    input_ids = torch.tensor([[101, 1037, 3899, 102, 0], [101, 7592, 2088, 999, 102]])
    attention_mask = (input_ids != 0).long()
    decoder_input_ids = torch.tensor([[101, 1037], [101, 7592]])
    with torch.no_grad():
        mine = model(input_ids, attention_mask, decoder_input_ids=decoder_input_ids).logits
        ref = theirs(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert_close(mine, ref, **TOL)


def test_fresh_decoder_of_its_own_size(checkpoint_dir):
    decoder = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=128)
    model = BertEncoderDecoder.from_encoder_pretrained(checkpoint_dir, decoder_config=decoder)
    assert model.enc_to_dec_proj.weight.shape == (64, 384)
    assert model.decoder.config.hidden_size == 64 and len(model.decoder.bert.encoder.layer) == 1
    with pytest.raises(ValueError, match="vocab_size"):
        BertEncoderDecoder.from_encoder_pretrained(checkpoint_dir, decoder_config=BertConfig(vocab_size=100))
