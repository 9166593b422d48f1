"""Loading and saving Hugging Face folders: what happens when a file is missing, corrupt or does not fit.

Lecture 1.1; run with `pytest -m embeddings`.
"""
import json

import pytest
import torch
from torch.testing import assert_close

from minibert import BertConfig, BertModel
from minibert.checkpoint import CheckpointMismatchError

pytestmark = pytest.mark.embeddings
SMALL = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=12)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = BertModel(BertConfig(**SMALL)).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    return model, folder


def test_round_trip_keeps_every_weight(saved):
    model, folder = saved
    loaded = BertModel.from_pretrained(folder)
    assert loaded.config == model.config
    for (name, ours), (_, theirs) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert_close(ours, theirs, rtol=0, atol=0, msg=name)
    assert not loaded.training  # dropout off after loading, as in transformers


def test_missing_folder_and_missing_weights_say_what_is_needed(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="config.json"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    _, folder = saved
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin"):
        BertModel.from_pretrained(folder)


def test_corrupt_weights_are_reported_not_crashed_on(saved):
    _, folder = saved
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a download cut short
    with pytest.raises(ValueError, match="corrupt, incomplete"):
        BertModel.from_pretrained(folder)


class NotWeights:  # torch.load(weights_only=True) must refuse to unpickle arbitrary objects
    pass


def test_pickle_that_is_not_plain_weights_is_refused(saved):
    _, folder = saved
    (folder / "model.safetensors").unlink()
    torch.save({"payload": NotWeights()}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="could not read the weights"):
        BertModel.from_pretrained(folder)


def test_corrupt_config_is_reported(saved):
    _, folder = saved
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertModel.from_pretrained(folder)


def test_weights_of_another_size_list_names_and_shapes(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 60  # config from one model, weights from another
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError) as err:
        BertModel.from_pretrained(folder)
    message = str(err.value)
    assert "embeddings.word_embeddings.weight (50, 16) vs (60, 16)" in message
    assert "vocabulary" in message


def test_missing_and_unexpected_weights_are_listed(saved):
    from safetensors.torch import load_file, save_file
    _, folder = saved
    state = load_file(folder / "model.safetensors")
    del state["pooler.dense.bias"]
    state["encoder.layer.7.output.dense.weight"] = torch.zeros(2, 2)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointMismatchError) as err:
        BertModel.from_pretrained(folder)
    assert "missing from the checkpoint (1): pooler.dense.bias (16,)" in str(err.value)
    assert "in the checkpoint but not in the model (1): encoder.layer.7.output.dense.weight" in str(err.value)


def test_vocab_larger_than_the_embedding_table_is_refused(saved):
    _, folder = saved
    (folder / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(80)) + "\n")
    with pytest.raises(ValueError, match="vocab.txt has 80 tokens but config.json says vocab_size=50"):
        BertModel.from_pretrained(folder)


def test_saving_never_overwrites_silently(saved):
    model, folder = saved
    before = (folder / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save_pretrained(folder)
    assert (folder / "model.safetensors").read_bytes() == before
    with torch.no_grad():
        model.pooler.dense.bias.fill_(1.0)
    model.save_pretrained(folder, overwrite=True)
    assert BertModel.from_pretrained(folder).pooler.dense.bias.eq(1.0).all()


def test_interrupted_save_leaves_the_old_checkpoint_intact(saved, monkeypatch):
    import safetensors.torch
    model, folder = saved
    before = (folder / "model.safetensors").read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as half_written:
            half_written.write(b"partial")
        raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of the write

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(folder, overwrite=True)
    assert (folder / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no temp file left
