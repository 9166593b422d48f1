"""The three task heads agree with transformers, and task checkpoints load and save in both directions.

Lecture 2.2 (outputs); run with `pytest -m outputs`.
"""
import json

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from minibert.config import BertConfig, default_labels
from minibert.model.heads import (BertForQuestionAnswering, BertForSequenceClassification,
                                  BertForTokenClassification, span_loss)
from minibert.model.pretraining import IGNORE_INDEX
from reference import random_batch, reference_batches

pytestmark = pytest.mark.outputs
TOL = dict(atol=1e-5, rtol=0)
# unusual sizes: a head dimension of 7, an odd vocabulary and feed-forward, three segments
ODD = dict(vocab_size=97, hidden_size=21, num_hidden_layers=2, num_attention_heads=3, intermediate_size=33,
           max_position_embeddings=29, type_vocab_size=3, hidden_act="gelu_new")
HEADS = {"sequence": BertForSequenceClassification, "token": BertForTokenClassification,
         "qa": BertForQuestionAnswering}


def labels_for(kind, batch, num_labels, regression=False, seed=0):
    """Seeded targets for each head: classes or numbers per sequence, classes per real token (-100 elsewhere),
    start/end positions with one past the window (which the loss must ignore)."""
    g = torch.Generator().manual_seed(seed)
    b, n = batch["input_ids"].shape
    if kind == "sequence":
        if regression:
            return {"labels": torch.randn(b, generator=g)}
        return {"labels": torch.randint(num_labels, (b,), generator=g)}
    if kind == "token":
        labels = torch.randint(num_labels, (b, n), generator=g)
        labels[:, 0] = IGNORE_INDEX  # [CLS], as the batching does
        return {"labels": labels.masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)}
    lengths = batch["attention_mask"].sum(1)
    start = (torch.rand(b, generator=g) * lengths).long()  # an answer lies among the real tokens
    end = torch.minimum(start + torch.randint(4, (b,), generator=g), lengths - 1)
    end[-1] = n + 5  # outside the window: clamped to n and ignored
    return {"start_positions": start, "end_positions": end}


def randomize_head(model, seed):
    """A fresh head has a zero bias; random values test every term."""
    g = torch.Generator().manual_seed(seed)
    head = model.qa_outputs if hasattr(model, "qa_outputs") else model.classifier
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g) * 0.1)
    return model


def outputs_of(kind, out, batch, reference=False):
    """The logits at the real tokens (padded positions compute nothing anyone reads) and the loss.

    The span loss of minibert leaves the padding out of the softmax (heads.span_loss); transformers' loss
    is then recomputed that way from transformers' own logits, and must equal its loss where nothing is padded.
    """
    real = batch["attention_mask"].bool()
    if kind == "sequence":
        return [out.logits, out.loss]
    if kind == "token":
        return [out.logits[real], out.loss]
    loss = out.loss
    if reference:
        masked = [logits.masked_fill(~real, -1e30) for logits in (out.start_logits, out.end_logits)]
        n = real.shape[1]
        starts, ends = batch["start_positions"].clamp(0, n), batch["end_positions"].clamp(0, n)
        loss = (F.cross_entropy(masked[0], starts, ignore_index=n) +
                F.cross_entropy(masked[1], ends, ignore_index=n)) / 2
        if real.all():
            assert_close(loss, out.loss, **TOL)
    return [out.start_logits[real], out.end_logits[real], loss]


def hf_config(transformers, num_labels, **sizes):
    return transformers.BertConfig(**sizes, num_labels=num_labels, hidden_dropout_prob=0.1,
                                   attention_probs_dropout_prob=0.1)


@pytest.mark.parametrize("kind, num_labels", [("sequence", 3), ("sequence", 1), ("token", 5), ("qa", 2)])
def test_random_checkpoint_saved_by_transformers_matches(kind, num_labels, transformers_lib, tmp_path):
    theirs_class = getattr(transformers_lib, HEADS[kind].__name__)
    torch.manual_seed(0)
    theirs = randomize_head(theirs_class._from_config(hf_config(transformers_lib, num_labels, **ODD),
                                                      attn_implementation="eager"), seed=1).eval()
    theirs.save_pretrained(tmp_path)
    ours = HEADS[kind].from_pretrained(tmp_path)
    assert ours.fresh_weights == [] and ours.config.num_labels == num_labels
    batch = random_batch(ODD["vocab_size"], batch=4, length=ODD["max_position_embeddings"], type_vocab_size=3)
    batch.update(labels_for(kind, batch, num_labels, regression=num_labels == 1))
    with torch.no_grad():
        mine, ref = ours(**batch), theirs(**batch)
    for a, b in zip(outputs_of(kind, mine, batch), outputs_of(kind, ref, batch, reference=True)):
        assert_close(a, b, **TOL)
    assert ours.config.problem_type == ref_problem_type(theirs)
    if kind == "qa":  # without padding, minibert's span loss is transformers' own loss
        batch["attention_mask"] = torch.ones_like(batch["attention_mask"])
        with torch.no_grad():
            assert_close(ours(**batch).loss, theirs(**batch).loss, **TOL)


def ref_problem_type(model):
    return getattr(model.config, "problem_type", None)


@pytest.mark.parametrize("kind", ["sequence", "token", "qa"])
@pytest.mark.parametrize("batch_kind", ["singles", "pairs"])
def test_real_weights_with_a_fresh_head_match(kind, batch_kind, checkpoint_dir, transformers_lib):
    """MiniLM's encoder under a fresh head: both models start the head at random, so it is copied across."""
    num_labels = {"sequence": 3, "token": 9, "qa": 2}[kind]
    ours = HEADS[kind].from_pretrained(checkpoint_dir, labels=num_labels)
    theirs = getattr(transformers_lib, HEADS[kind].__name__).from_pretrained(
        checkpoint_dir, num_labels=num_labels, attn_implementation="eager").eval()
    head = "qa_outputs." if kind == "qa" else "classifier."
    assert sorted(ours.fresh_weights) == [head + "bias", head + "weight"]  # MiniLM has the pooler
    randomize_head(theirs, seed=2)
    ours.load_state_dict(theirs.state_dict(), strict=False)
    batch = dict(reference_batches(checkpoint_dir, transformers_lib)[batch_kind])
    batch.update(labels_for(kind, batch, num_labels))
    with torch.no_grad():
        mine, ref = ours(**batch), theirs(**batch)
    for a, b in zip(outputs_of(kind, mine, batch), outputs_of(kind, ref, batch, reference=True)):
        assert_close(a, b, **TOL)


@pytest.mark.parametrize("kind", ["sequence", "token", "qa"])
def test_a_folder_minibert_saves_loads_in_transformers(kind, transformers_lib, tmp_path):
    names = ["negative", "neutral", "positive"] if kind == "sequence" else ["O", "B-PER", "I-PER", "B-LOC"]
    torch.manual_seed(3)
    config = BertConfig(**ODD, id2label=dict(enumerate(names)) if kind != "qa" else None)
    ours = randomize_head(HEADS[kind](config), seed=4).eval()
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == [HEADS[kind].__name__]
    theirs = getattr(transformers_lib, HEADS[kind].__name__).from_pretrained(
        tmp_path, attn_implementation="eager").eval()
    assert theirs.config.id2label == config.id2label if kind != "qa" else theirs.config.num_labels == 2
    batch = random_batch(ODD["vocab_size"], batch=3, length=17, type_vocab_size=3, seed=5)
    batch.update(labels_for(kind, batch, config.num_labels, seed=6))
    with torch.no_grad():
        mine, ref = ours(**batch), theirs(**batch)
    for a, b in zip(outputs_of(kind, mine, batch), outputs_of(kind, ref, batch, reference=True)):
        assert_close(a, b, **TOL)
    # and back: minibert reads its own folder with the labels' names
    again = HEADS[kind].from_pretrained(tmp_path)
    assert again.config.id2label == config.id2label and again.fresh_weights == []


def test_regression_and_classification_losses_by_hand():
    """MSE for one output, cross-entropy for several: the same numbers as the formulas."""
    torch.manual_seed(0)
    batch = random_batch(ODD["vocab_size"], batch=5, length=11, type_vocab_size=3, seed=7)
    regression = BertForSequenceClassification(BertConfig(**ODD, id2label=default_labels(1))).eval()
    targets = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5])
    out = regression(**batch, labels=targets)
    assert out.logits.shape == (5, 1) and regression.config.problem_type == "regression"
    assert_close(out.loss, ((out.logits[:, 0] - targets) ** 2).mean())
    classes = BertForSequenceClassification(BertConfig(**ODD, id2label=default_labels(4))).eval()
    labels = torch.tensor([0, 3, 1, 2, 3])
    out = classes(**batch, labels=labels)
    log_probs = out.logits.log_softmax(-1)
    assert_close(out.loss, -log_probs[torch.arange(5), labels].mean())
    assert classes.config.problem_type == "single_label_classification"


def test_span_loss_ignores_positions_outside_the_window():
    start_logits, end_logits = torch.randn(3, 6, generator=torch.Generator().manual_seed(0)).unbind(0)[:2]
    start_logits, end_logits = start_logits[None].repeat(2, 1), end_logits[None].repeat(2, 1)
    loss = span_loss(start_logits, end_logits, torch.tensor([1, 40]), torch.tensor([2, 40]))
    expected = (-start_logits[0].log_softmax(-1)[1] - end_logits[0].log_softmax(-1)[2]) / 2
    assert_close(loss, expected)


def test_a_head_for_other_labels_is_refused_with_the_reason(tmp_path):
    model = BertForSequenceClassification(BertConfig(**ODD, id2label=dict(enumerate(["neg", "pos"]))))
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"head trained for 2 classes \(neg, pos\).*task has 5"):
        BertForSequenceClassification.from_pretrained(tmp_path, labels=5)
    assert BertForSequenceClassification.from_pretrained(tmp_path, labels=["neg", "pos"]).config.num_labels == 2


def test_config_json_round_trip_keeps_the_labels(tmp_path):
    config = BertConfig(**ODD, id2label={0: "O", 1: "B-ORG"}, classifier_dropout=0.2)
    config.to_json(tmp_path / "config.json")
    values = json.loads((tmp_path / "config.json").read_text())
    assert values["id2label"] == {"0": "O", "1": "B-ORG"} and values["label2id"] == {"O": 0, "B-ORG": 1}
    assert BertConfig.from_json(tmp_path / "config.json") == config
    assert "id2label" not in BertConfig(**ODD).to_dict()  # a bare encoder's file is unchanged
    assert BertConfig.from_dict({**BertConfig(**ODD).to_dict(), "num_labels": 4}).num_labels == 4
