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


def docker_only(image: str = "aem/base:0") -> pytest.MarkDecorator:
    """Skip mark for tests that need a Docker engine with ``image``; the reason names what is
    missing. CI sets AEM_REQUIRE_DOCKER=1 so a missing engine or image fails loudly instead."""
    import os

    reason = None
    try:
        from aem_envs.sandbox import lifecycle

        lifecycle.get_client().images.get(image)
    except Exception as e:  # no engine or no image: say which
        reason = f"Docker not usable here: {str(e).splitlines()[0][:120]}"
    require = os.environ.get("AEM_REQUIRE_DOCKER", "") not in ("", "0")
    return pytest.mark.skipif(reason is not None and not require, reason=reason or "")
