"""The training loop: exact resume, atomic checkpoints, a clean stop on NaN, accumulation, the optimiser.

Lecture lectures/pretraining.md, sections "The training loop" and "Checkpoints and resuming"; run with
`pytest -m pretraining`. A two-layer, 32-wide BERT on a made-up corpus: a few seconds per run.
"""
import math

import pytest
import torch
from torch.testing import assert_close

from minibert.config import BertConfig
from minibert.model.pretraining import BertForPreTraining
from minibert.pretraining import PretrainingData, Pretrainer, TrainingConfig, TrainingDiverged
from minibert.pretraining import trainer as trainer_module
from minibert.pretraining import training_state
from minibert.pretraining.data import StagedData
from minibert.pretraining.evaluate import evaluate
from minibert.pretraining.optim import LinearWarmupDecay, make_optimizer
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.pretraining
WORDS = ["the", "cat", "dog", "bird", "sat", "ran", "flew", "on", "under", "a", "mat", "tree", "house", "big",
         "small", "red", "old", "and", "then", "slept"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A made-up text of 120 short documents, a vocabulary of its words, and the data made from them."""
    folder = tmp_path_factory.mktemp("corpus")
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS])
    g = torch.Generator().manual_seed(0)

    def sentence():
        n = int(torch.randint(4, 10, (), generator=g))
        return " ".join(WORDS[i] for i in torch.randint(len(WORDS), (n,), generator=g).tolist()).capitalize() + "."

    text = "\n\n".join(" ".join(sentence() for _ in range(int(torch.randint(2, 7, (), generator=g))))
                       for _ in range(120))
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    data = PretrainingData.from_files([folder / "corpus.txt"], tokenizer, max_length=48, batch_size=8)
    return tokenizer, data


def tiny_config(tokenizer, dropout=0.1) -> BertConfig:
    return BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                      attention_probs_dropout_prob=dropout)


def make_trainer(corpus, out, dropout=0.1, **options) -> Pretrainer:
    tokenizer, data = corpus
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config(tokenizer, dropout))
    settings = dict(out_dir=out, steps=6, save_every=3, eval_every=0, lr=3e-3, device="cpu", quiet=True)
    return Pretrainer(model, data, TrainingConfig(**{**settings, **options}))


def parameters(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def record_gradients(trainer) -> list[dict]:
    """The gradient of every step, as the optimizer is about to use it (after clipping)."""
    seen, model = [], trainer.model
    trainer.optimizer.register_step_pre_hook(
        lambda *_: seen.append({n: p.grad.clone() for n, p in model.named_parameters()}))
    return seen


def test_resume_after_a_crash_gives_the_same_parameters_as_an_uninterrupted_run(corpus, tmp_path, monkeypatch):
    """Dropout is on, so this also checks that the random state is saved and restored."""
    straight = make_trainer(corpus, tmp_path / "straight")
    straight.train()

    crashing = make_trainer(corpus, tmp_path / "resumed")
    real_micro_batches = PretrainingData.micro_batches

    def crash_at_step_4(self, step, *args, **kwargs):
        if step == 4:
            raise RuntimeError("the machine went down")
        return real_micro_batches(self, step, *args, **kwargs)

    monkeypatch.setattr(PretrainingData, "micro_batches", crash_at_step_4)
    with pytest.raises(RuntimeError, match="went down"):
        crashing.train()
    monkeypatch.undo()
    assert training_state.load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 3

    resumed = make_trainer(corpus, tmp_path / "resumed")
    resumed.resume()
    assert resumed.step == 3
    resumed.train()
    final, expected = parameters(resumed.model), parameters(straight.model)
    assert not all(torch.equal(final[k], parameters(make_trainer(corpus, tmp_path / "x").model)[k]) for k in final)
    for name in expected:
        assert_close(final[name], expected[name], atol=0, rtol=0, msg=name)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_an_interrupted_checkpoint_write_leaves_the_previous_checkpoint(corpus, tmp_path, monkeypatch):
    trainer = make_trainer(corpus, tmp_path, steps=3, save_every=3)
    trainer.train()
    path = tmp_path / "checkpoint.pt"
    before = path.read_bytes()
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as handle:  # half the file reached the disk, then the write failed
            handle.truncate(len(before) // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training_state.torch, "save", disk_full)
    trainer.config.steps = trainer.total_steps = 6
    with pytest.raises(OSError, match="No space"):
        trainer.train()  # steps 4-6, then the save at step 6 fails
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert training_state.load_checkpoint(path)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [], "no temporary file left"


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch):
    real_forward, calls = trainer_module.forward, []

    def poisoned(model, batch):
        output = real_forward(model, batch)
        calls.append(1)
        if len(calls) == 5:  # the fifth step
            output.prediction_logits = output.prediction_logits * float("nan")
        return output

    monkeypatch.setattr(trainer_module, "forward", poisoned)
    trainer = make_trainer(corpus, tmp_path, steps=8, save_every=2)
    with pytest.raises(TrainingDiverged, match=r"step 5: the loss is nan.*last good checkpoint \(step 4\)"):
        trainer.train()
    saved = training_state.load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["step"] == 4
    for name, value in trainer.model.state_dict().items():
        assert torch.isfinite(value).all(), f"{name} was updated with the NaN"
        assert torch.equal(saved["model"][name], value), "the weights are those of step 4"
    assert torch.equal(BertForPreTraining.from_pretrained(tmp_path).bert.pooler.dense.weight,
                       saved["model"]["bert.pooler.dense.weight"])


def test_gradient_accumulation_gives_the_same_step_as_one_big_batch(corpus, tmp_path):
    """The gradient of each step, taken just before the optimizer uses it, is that of the whole batch.

    Gradients, not parameters after the step: Adam divides each step by the gradient's own size, so it
    hides a gradient scaled wrongly and turns rounding noise in a ~0 component into a full-sized step."""
    one = make_trainer(corpus, tmp_path / "one", dropout=0.0, steps=3, save_every=0)
    two = make_trainer(corpus, tmp_path / "two", dropout=0.0, steps=3, save_every=0, accumulation=4)
    gradients = {one: record_gradients(one), two: record_gradients(two)}
    for trainer in gradients:
        trainer.train()
    assert len(gradients[one]) == len(gradients[two]) == 3
    theirs, mine = gradients[one][0], gradients[two][0]  # the first step: from the same parameters
    for name in theirs:
        scale = theirs[name].abs().max().clamp_min(1e-3)
        assert_close(mine[name] / scale, theirs[name] / scale, atol=1e-5, rtol=0, msg=name)
    for name, p in parameters(one.model).items():  # and after three steps the same parameters, up to noise
        assert_close(parameters(two.model)[name], p, atol=1e-5, rtol=0, msg=name)


def test_nsp_weight_scales_the_nsp_part_of_the_gradient(corpus, tmp_path):
    """The objective is MLM loss + nsp_weight x NSP loss: the gradient of the first step with weight 3 is
    that of the MLM loss plus three times the NSP part (got as weight 1 minus weight 0); the loss the
    history records stays MLM + NSP, so runs with other weights compare."""
    first_gradient, first_loss = {}, {}
    for weight in (0.0, 1.0, 3.0):
        trainer = make_trainer(corpus, tmp_path / str(weight), dropout=0.0, steps=1, save_every=0,
                               max_grad_norm=0, nsp_weight=weight)  # no clipping: it would rescale the sum
        gradients = record_gradients(trainer)
        first_loss[weight] = trainer.train()["history"][0]["loss"]
        first_gradient[weight] = gradients[0]
    mlm, nsp = first_gradient[0.0], {n: first_gradient[1.0][n] - first_gradient[0.0][n] for n in first_gradient[0.0]}
    assert nsp["cls.seq_relationship.weight"].abs().max() > 1e-3 and nsp["bert.pooler.dense.weight"].abs().max() > 0
    for name, gradient in first_gradient[3.0].items():
        scale = gradient.abs().max().clamp_min(1e-3)
        assert_close(gradient / scale, (mlm[name] + 3 * nsp[name]) / scale, atol=1e-5, rtol=0, msg=name)
    assert first_loss[0.0] == pytest.approx(first_loss[1.0]) and first_loss[3.0] == pytest.approx(first_loss[1.0])


def test_the_trainer_records_the_loss_and_evaluates_held_out_text(corpus, tmp_path):
    tokenizer, data = corpus
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config(tokenizer))
    trainer = Pretrainer(model, data, TrainingConfig(out_dir=tmp_path, steps=4, eval_every=2, save_every=0,
                                                     eval_examples=64, device="cpu", quiet=True), eval_data=data)
    result = trainer.train()
    assert [h["step"] for h in result["history"]] == [1, 2, 3, 4]
    assert [e["step"] for e in result["evaluations"]] == [2, 4]
    last = result["evaluations"][-1]
    assert math.isclose(last["eval_perplexity"], math.exp(last["eval_mlm_loss"]), rel_tol=1e-9)
    assert (tmp_path / "loss_curve.png").stat().st_size > 10_000
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()


def test_minutes_are_fitted_stage_by_stage(corpus, tmp_path, monkeypatch):
    """Every step of the short stage, then as many long steps as the time left allows (85% of --minutes,
    the rest being for optimizer steps and evaluations), each stage timed on its own first batches."""
    tokenizer, data = corpus
    timed = []

    def seconds_per_step(self, first_step, data):
        timed.append((first_step, data))
        return {"short": 1.0, "long": 2.0}[data.name]

    monkeypatch.setattr(trainer_module.Pretrainer, "_seconds_per_step", seconds_per_step)

    def fitted(minutes, short_steps):
        staged = StagedData([(short_steps, _Named(data, "short")), (None, _Named(data, "long"))])
        trainer = Pretrainer(BertForPreTraining(tiny_config(tokenizer)), staged,
                             TrainingConfig(out_dir=tmp_path, minutes=minutes, device="cpu", quiet=True))
        timed.clear()
        return trainer._fit_steps_to_minutes(), [(first, data.name) for first, data in timed]

    # 0.85 x 60 s = 51 s: 10 short steps (10 s), then 41 s / 2 s = 20 long steps
    assert fitted(1, 10) == (30, [(0, "short"), (10, "long")])
    # 51 s hold only 51 of the 100 short steps; the long stage is never reached or timed
    assert fitted(1, 100) == (51, [(0, "short")])


class _Named:
    """A stage's data with a name, so a test can tell which stage was timed."""

    def __init__(self, data, name):
        self.data, self.name, self.max_length = data, name, data.max_length

    def micro_batches(self, *args, **kwargs):
        return self.data.micro_batches(*args, **kwargs)


def test_evaluate_by_hand(corpus):
    tokenizer, data = corpus
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config(tokenizer)).eval()
    batch = data.micro_batches(0)[0]
    result = evaluate(model, [batch])
    with torch.no_grad():
        out = model(batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.labels,
                    batch.next_sentence_label)
    labelled = batch.labels != -100
    hits = (out.prediction_logits[labelled].argmax(-1) == batch.labels[labelled]).double().mean()
    assert math.isclose(result.mlm_loss, out.mlm_loss.item(), rel_tol=1e-5)
    assert math.isclose(result.nsp_loss, out.nsp_loss.item(), rel_tol=1e-5)
    assert math.isclose(result.mlm_accuracy, hits.item(), rel_tol=1e-9)
    assert math.isclose(result.perplexity, math.exp(out.mlm_loss.item()), rel_tol=1e-5)


def test_no_weight_decay_on_biases_and_layer_norms(corpus):
    tokenizer, _ = corpus
    model = BertForPreTraining(tiny_config(tokenizer))
    decay, no_decay = make_optimizer(model, lr=1e-3, weight_decay=0.01).param_groups
    name_of = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(name_of[id(p)].endswith("bias") or "LayerNorm" in name_of[id(p)] for p in no_decay["params"])
    assert all(p.dim() == 2 for p in decay["params"])
    assert "cls.predictions.bias" in {name_of[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters())), "tied weight once"


def test_linear_warmup_then_linear_decay_by_hand():
    schedule = LinearWarmupDecay(warmup_steps=2, total_steps=10)
    assert [schedule(s) for s in (0, 1, 2, 6, 9, 10)] == [0.5, 1.0, 1.0, 0.5, 0.125, 0.0]


def test_bf16_autocast_trains_with_about_the_same_loss(corpus, tmp_path):
    exact = make_trainer(corpus, tmp_path / "fp32", dropout=0.0, steps=2, save_every=0)
    fast = make_trainer(corpus, tmp_path / "bf16", dropout=0.0, steps=2, save_every=0, bf16=True)
    exact.train()
    fast.train()
    assert all(math.isfinite(h["loss"]) for h in fast.history)
    assert abs(fast.history[0]["loss"] - exact.history[0]["loss"]) < 0.05, "bfloat16 keeps ~3 significant digits"


def test_device_choice():
    from minibert.pretraining.distributed import pick_device
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="unknown"):
        pick_device("tpu")
