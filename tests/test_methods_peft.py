"""LoRA is LoRA: adapters move between minibert and PEFT (peft + transformers) with the same outputs.

Lecture 2.3; run with `pytest -m finetuning`. peft is a test-only dependency.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert import BertModel
from minibert.methods import apply, load_peft_lora, save_peft_lora
from reference import random_batch

pytestmark = pytest.mark.finetuning
SIZES = dict(vocab_size=200, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=32)


@pytest.fixture()
def peft_lib():
    return pytest.importorskip("peft")


@pytest.fixture()
def base_folder(tmp_path, transformers_lib):
    torch.manual_seed(0)
    transformers_lib.BertModel(transformers_lib.BertConfig(**SIZES)).eval().save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def their_outputs(model, batch):
    with torch.no_grad():
        return model(**batch).last_hidden_state[batch["attention_mask"].bool()]


def test_minibert_lora_loads_in_peft(tmp_path, base_folder, transformers_lib, peft_lib):
    ours = apply(BertModel.from_pretrained(base_folder), "lora", r=4, alpha=8, target_modules=("query", "value", "dense"))
    with torch.no_grad():  # as if trained: B is no longer zero
        for name, p in ours.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1, generator=torch.Generator().manual_seed(len(name)))
    save_peft_lora(ours, tmp_path / "adapter")
    base = transformers_lib.BertModel.from_pretrained(base_folder, attn_implementation="eager").eval()
    batch = random_batch(200, batch=3, length=16, type_vocab_size=2, seed=1)
    without = their_outputs(base, batch)
    theirs = peft_lib.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()  # wraps base in place
    mine = ours.eval()(**batch).last_hidden_state[batch["attention_mask"].bool()]
    assert_close(mine, their_outputs(theirs, batch), atol=1e-5, rtol=0)
    assert not torch.allclose(without, mine, atol=1e-3)  # the adapter does change the model


def test_peft_lora_loads_in_minibert(tmp_path, base_folder, transformers_lib, peft_lib):
    base = transformers_lib.BertModel.from_pretrained(base_folder, attn_implementation="eager")
    config = peft_lib.LoraConfig(r=6, lora_alpha=12, target_modules=["query", "value"], lora_dropout=0.0,
                                 init_lora_weights=False)  # random A and B: a non-zero update, as after training
    theirs = peft_lib.get_peft_model(base, config).eval()
    theirs.save_pretrained(tmp_path / "adapter")
    ours = load_peft_lora(BertModel.from_pretrained(base_folder), tmp_path / "adapter").eval()
    assert ours.finetuning_method == {"method": "lora", "r": 6, "alpha": 12, "dropout": 0.0,
                                      "target_modules": ("query", "value")}
    batch = random_batch(200, batch=3, length=16, type_vocab_size=2, seed=2)
    assert_close(ours(**batch).last_hidden_state[batch["attention_mask"].bool()], their_outputs(theirs, batch),
                 atol=1e-5, rtol=0)


def test_a_folder_that_is_not_lora_is_refused(tmp_path, base_folder):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_peft_lora(BertModel.from_pretrained(base_folder), tmp_path / "adapter")
