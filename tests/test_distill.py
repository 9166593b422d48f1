"""Distillation's parts (minibert/smaller/distill.py): the student's start and the losses, by hand.

Lecture 1.2; run with `pytest -m smaller`. Training a student waits for the fine-tuning loop.
"""
import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from minibert import BertConfig, BertModel
from minibert.smaller.distill import (attention_loss, distillation_loss, hidden_state_loss, layer_map,
                                      student_from_teacher)
from reference import random_batch

pytestmark = pytest.mark.smaller
CONFIG = BertConfig(vocab_size=90, hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=48,
                    max_position_embeddings=24, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_student_is_every_other_layer_of_the_teacher(tmp_path):
    torch.manual_seed(0)
    teacher = BertModel(CONFIG).eval()
    student = student_from_teacher(teacher)
    assert student.config.num_hidden_layers == 3 and teacher.config.num_hidden_layers == 6
    assert len(student.encoder.layer) == 3 and len(teacher.encoder.layer) == 6
    batch = random_batch(90, 3, 12, 2)
    with torch.no_grad():  # by hand: the teacher's embeddings, its layers 0, 2, 4, its pooler
        x = teacher.embeddings(batch["input_ids"], batch["token_type_ids"])
        mask = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in (0, 2, 4):
            x, _ = teacher.encoder.layer[i](x, mask)
        mine = student(**batch)
    real = batch["attention_mask"].bool()
    assert_close(mine.last_hidden_state[real], x[real], atol=1e-5, rtol=0)
    assert_close(mine.pooler_output, teacher.pooler(x), atol=1e-5, rtol=0)
    student.encoder.layer[0].output.dense.weight.data.add_(1.0)  # a copy: training it leaves the teacher alone
    assert not torch.equal(student.encoder.layer[0].output.dense.weight, teacher.encoder.layer[0].output.dense.weight)
    student.save_pretrained(tmp_path)  # a BertModel folder of 3 layers
    assert BertModel.from_pretrained(tmp_path).config.num_hidden_layers == 3
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        student_from_teacher(teacher, [0, 6])


def test_distillation_loss_by_hand():
    """Teacher logits (0, ln 3): at T = 1 probabilities (1/4, 3/4); at T = 2 (1, sqrt 3) / (1 + sqrt 3). A student
    with equal logits says (1/2, 1/2); its cross-entropy with label 1 is ln 2."""
    teacher = torch.tensor([[0.0, math.log(3)]])
    student = torch.zeros(1, 2, requires_grad=True)
    labels = torch.tensor([1])
    one = distillation_loss(student, teacher, labels, temperature=1.0, alpha=0.5)
    kl_at_1 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert_close(one.soft, torch.tensor(kl_at_1))
    assert_close(one.hard, torch.tensor(math.log(2)))
    assert_close(one.loss, torch.tensor(0.5 * kl_at_1 + 0.5 * math.log(2)))
    p = 1 / (1 + math.sqrt(3))
    kl_at_2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    two = distillation_loss(student, teacher, labels, temperature=2.0, alpha=1.0)
    assert_close(two.soft, torch.tensor(4 * kl_at_2))
    assert_close(two.loss, two.soft)


def test_t_squared_keeps_the_soft_gradient_the_same_size_at_any_temperature():
    """d(T^2 KL)/dz_s = T (p_s - p_t) -> (z_s - z_t - mean) / C for large T: not shrinking as 1/T^2."""
    g = torch.Generator().manual_seed(1)
    teacher = torch.randn(4, 3, generator=g)
    gradients = []
    for temperature in (20.0, 40.0):
        student = torch.randn(4, 3, generator=torch.Generator().manual_seed(2)).requires_grad_()
        distillation_loss(student, teacher, torch.zeros(4, dtype=torch.long), temperature, alpha=1.0).loss.backward()
        gradients.append(student.grad)
    ratio = gradients[0].norm() / gradients[1].norm()  # without the T^2: 4, the gradient shrinking as 1 / T^2
    assert 0.97 < ratio < 1.03
    teacher.requires_grad_()
    distillation_loss(torch.zeros(4, 3, requires_grad=True), teacher, torch.zeros(4, dtype=torch.long)).loss.backward()
    assert teacher.grad is None  # the teacher is a target, never trained


def test_cosine_term_counts_real_tokens_only():
    hidden = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    teacher = hidden.clone()
    teacher[0, 3:] = -hidden[0, 3:]  # opposite, but at the padding
    logits, labels = torch.zeros(2, 2), torch.zeros(2, dtype=torch.long)
    same = distillation_loss(logits, logits, labels, student_hidden=hidden, teacher_hidden=teacher,
                             attention_mask=mask, beta=1.0)
    assert_close(same.cosine, torch.tensor(0.0), atol=1e-6, rtol=0)
    opposite = distillation_loss(logits, logits, labels, student_hidden=hidden, teacher_hidden=-hidden,
                                 attention_mask=mask, beta=1.0)
    assert_close(opposite.cosine, torch.tensor(2.0))
    assert_close(opposite.loss, 0.5 * opposite.hard + 2.0)  # soft is 0: the same logits


def test_tinybert_losses():
    assert layer_map(3, 6) == [2, 4, 6] and layer_map(2, 6) == [3, 6]
    g = torch.Generator().manual_seed(4)
    teacher = torch.randn(2, 4, 6, generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    projection = nn.Linear(3, 6, bias=False)
    student = torch.randn(2, 4, 3, generator=g)
    expected = (projection(student) - teacher)[mask.bool()].square().mean()
    assert_close(hidden_state_loss(student, teacher, projection, mask), expected)
    with pytest.raises(ValueError, match=r"projection=nn.Linear\(3, 6\)"):
        hidden_state_loss(student, teacher)
    maps = torch.rand(2, 2, 4, 4, generator=g)
    changed = maps.clone()
    changed[0, :, 2:, :] = 5.0  # padded queries and keys of the first sequence
    changed[0, :, :, 2:] = 5.0
    assert_close(attention_loss(maps, changed, mask), torch.tensor(0.0))
    assert attention_loss(maps, changed) > 1.0  # without the mask, the padding would count
