"""BertForPreTraining and BertForMaskedLM agree with transformers, and load and save in both directions.

Lecture lectures/pretraining.md; run with `pytest -m pretraining`.
"""
import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from minibert.config import BertConfig
from minibert.model.pretraining import IGNORE_INDEX, BertForMaskedLM, BertForPreTraining
from reference import random_batch, reference_batches

pytestmark = pytest.mark.pretraining
TOL = dict(atol=1e-5, rtol=0)  # float32, absolute: the 1e-5
SMALL = BertConfig(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=40, attn_implementation="eager")


def labels_for(input_ids, attention_mask, seed=0):
    """Every fourth real token (at a seeded offset) carries its own id as label, the rest -100."""
    offset = int(torch.randint(4, (), generator=torch.Generator().manual_seed(seed)))
    positions = torch.arange(input_ids.shape[1])[None, :].expand_as(input_ids)
    chosen = ((positions + offset) % 4 == 0) & attention_mask.bool()
    return torch.where(chosen, input_ids, IGNORE_INDEX)


def with_labels(batch, seed=0):
    batch = dict(batch)
    batch["labels"] = labels_for(batch["input_ids"], batch["attention_mask"], seed)
    batch["next_sentence_label"] = torch.arange(len(batch["input_ids"])) % 2
    return batch


def randomize_heads(model, seed):
    """Freshly initialised heads have zero biases and unit LayerNorms; random values test every term.
    Matrices keep BERT's scale (0.02), so logits stay the size that real heads give."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("cls."):
                scale = 0.02 if parameter.dim() == 2 else 0.1
                parameter.copy_(torch.randn(parameter.shape, generator=g) * scale + ("LayerNorm.weight" in name))
    return model


def assert_pretraining_outputs_match(mine, ref, attention_mask):
    """Logits at real tokens (what a padded position computes is meaningless, and it is never used), the NSP
    logits and the loss."""
    real = attention_mask.bool()
    assert_close(mine.prediction_logits[real], ref.prediction_logits[real], **TOL)
    assert_close(mine.seq_relationship_logits, ref.seq_relationship_logits, **TOL)
    assert_close(mine.loss, ref.loss, **TOL)


@pytest.fixture(scope="module")
def real_pair(checkpoint_dir, transformers_lib, tmp_path_factory):
    """transformers' BertForPreTraining on the MiniLM encoder with random heads, and minibert reading its save."""
    folder = tmp_path_factory.mktemp("hf-pretraining")
    theirs = transformers_lib.BertForPreTraining.from_pretrained(checkpoint_dir, attn_implementation="eager")
    randomize_heads(theirs, seed=1).eval().save_pretrained(folder)
    ours = BertForPreTraining.from_pretrained(folder, attn_implementation="eager")  # the textbook path
    return ours, theirs.eval()


@pytest.mark.parametrize("kind", ["singles", "pairs"])
def test_real_weights_logits_and_loss_match_transformers(real_pair, checkpoint_dir, transformers_lib, kind):
    ours, theirs = real_pair
    batch = with_labels(reference_batches(checkpoint_dir, transformers_lib)[kind])
    with torch.no_grad():
        mine, ref = ours(**batch), theirs(**batch)
    assert mine.prediction_logits.shape == (*batch["input_ids"].shape, 30522)
    assert_pretraining_outputs_match(mine, ref, batch["attention_mask"])
    assert 5 < mine.loss.item() < 30, "random heads on a real encoder: a loss near ln(30522) + ln 2, not 0"


def test_random_small_config_matches_transformers_both_ways(transformers_lib, tmp_path):
    torch.manual_seed(0)
    ours = randomize_heads(BertForPreTraining(SMALL), seed=2).eval()
    ours.save_pretrained(tmp_path / "ours")
    theirs = transformers_lib.BertForPreTraining.from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    batch = with_labels(random_batch(SMALL.vocab_size, batch=3, length=17, type_vocab_size=2))
    with torch.no_grad():
        assert_pretraining_outputs_match(ours(**batch), theirs(**batch), batch["attention_mask"])

    theirs.save_pretrained(tmp_path / "theirs")  # and back: transformers' folder into minibert
    again = BertForPreTraining.from_pretrained(tmp_path / "theirs")
    assert again.fresh_weights == []
    with torch.no_grad():
        assert_pretraining_outputs_match(again(**batch), theirs(**batch), batch["attention_mask"])


def test_masked_lm_matches_transformers_both_ways(transformers_lib, tmp_path):
    torch.manual_seed(0)
    ours = randomize_heads(BertForMaskedLM(SMALL), seed=3).eval()
    assert ours.bert.pooler is None, "Hugging Face's BertForMaskedLM has no pooler"
    ours.save_pretrained(tmp_path / "ours")
    theirs = transformers_lib.BertForMaskedLM.from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    batch = with_labels(random_batch(SMALL.vocab_size, batch=3, length=17, type_vocab_size=2))
    batch.pop("next_sentence_label")
    with torch.no_grad():
        mine, ref = ours(**batch), theirs(**batch)
    real = batch["attention_mask"].bool()
    assert_close(mine.logits[real], ref.logits[real], **TOL)
    assert_close(mine.loss, ref.loss, **TOL)

    theirs.save_pretrained(tmp_path / "theirs")
    again = BertForMaskedLM.from_pretrained(tmp_path / "theirs")
    with torch.no_grad():
        assert_close(again(**batch).logits[real], ref.logits[real], **TOL)


def test_decoder_is_the_word_embedding_table_and_is_saved_once(tmp_path):
    model = BertForPreTraining(SMALL)
    head = model.cls.predictions
    assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert head.decoder.bias is head.bias
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert "cls.predictions.decoder.weight" not in saved and "cls.predictions.decoder.bias" not in saved
    assert {"cls.predictions.bias", "cls.seq_relationship.weight", "bert.pooler.dense.weight"} <= set(saved)
    loaded = BertForPreTraining.from_pretrained(tmp_path)
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    assert_close(loaded.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight, atol=0, rtol=0)


def test_pretraining_checkpoint_loads_as_masked_lm_and_bare_encoder_gets_fresh_heads(tmp_path, checkpoint_dir):
    torch.manual_seed(0)
    full = randomize_heads(BertForPreTraining(SMALL), seed=4).eval()
    full.save_pretrained(tmp_path)
    mlm = BertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager")  # no pooler, no NSP head
    batch = random_batch(SMALL.vocab_size, batch=2, length=9, type_vocab_size=2)
    with torch.no_grad():
        assert_close(mlm(**batch).logits, full(**batch).prediction_logits, atol=0, rtol=0)

    from_encoder = BertForPreTraining.from_pretrained(checkpoint_dir)  # MiniLM: an encoder without heads
    assert from_encoder.fresh_weights and all(name.startswith("cls.") for name in from_encoder.fresh_weights)


def test_masked_positions_only_scores_the_labelled_tokens_with_the_same_loss():
    torch.manual_seed(0)
    model = randomize_heads(BertForPreTraining(SMALL), seed=5).eval()
    batch = with_labels(random_batch(SMALL.vocab_size, batch=3, length=17, type_vocab_size=2))
    with torch.no_grad():
        full, sparse = model(**batch), model(**batch, masked_positions_only=True)
    labelled = batch["labels"] != IGNORE_INDEX
    assert sparse.prediction_logits.shape == (int(labelled.sum()), SMALL.vocab_size)
    assert_close(sparse.prediction_logits, full.prediction_logits[labelled], **TOL)
    assert_close(sparse.loss, full.loss, **TOL)


def test_loss_counts_only_the_labelled_positions():
    """The bug that keeps from-scratch BERTs near loss 7: averaging the loss over every position."""
    torch.manual_seed(0)
    model = randomize_heads(BertForPreTraining(SMALL), seed=6).eval()
    batch = with_labels(random_batch(SMALL.vocab_size, batch=3, length=17, type_vocab_size=2))
    with torch.no_grad():
        out = model(**batch)
    labelled = batch["labels"] != IGNORE_INDEX
    log_probs = out.prediction_logits.log_softmax(-1)
    by_hand = -log_probs[labelled].gather(1, batch["labels"][labelled][:, None]).mean()
    assert_close(out.mlm_loss, by_hand, atol=1e-6, rtol=0)
    assert_close(out.loss, out.mlm_loss + out.nsp_loss, atol=0, rtol=0)

    # The prediction at an unlabelled position does not enter the loss: change the label there, same loss.
    relabelled = dict(batch, labels=torch.where(labelled, batch["labels"], IGNORE_INDEX))
    relabelled["labels"][~labelled] = IGNORE_INDEX
    everything = dict(batch, labels=torch.where(batch["attention_mask"].bool(), batch["input_ids"], IGNORE_INDEX))
    with torch.no_grad():
        assert_close(model(**relabelled).mlm_loss, by_hand, atol=1e-6, rtol=0)
        assert (model(**everything).mlm_loss - by_hand).abs() > 1e-3, "labelling every token gives another loss"
