"""Fixtures shared by the learner tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUESS_ENV_FILE = ROOT / "examples" / "custom_env.py"


def register_guess_number() -> None:
    """Import examples/custom_env.py once; it registers aem/GuessNumber-v0."""
    if "custom_env" not in sys.modules:
        spec = importlib.util.spec_from_file_location("custom_env", GUESS_ENV_FILE)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["custom_env"] = mod
        spec.loader.exec_module(mod)


@pytest.fixture(scope="session")
def guess_ckpt(tmp_path_factory) -> Path:
    """A test-preset model whose tokenizer was trained on GuessNumber text (tests only read it)."""
    from aem_train.tiny import init_model

    register_guess_number()
    out = tmp_path_factory.mktemp("tiny")
    init_model(out, ["aem/GuessNumber-v0"], preset="test", episodes=30)
    return out


@pytest.fixture(scope="session")
def household_ckpt(tmp_path_factory) -> str:
    """A random-init test-preset model with a tokenizer trained on Household text (tests only
    read it: runs write their own directories)."""
    from aem_train.tiny import init_model

    out = tmp_path_factory.mktemp("household-model") / "m"
    init_model(out, ["aem/Household-v0"], preset="test", episodes=20, seed=0)
    return str(out)
