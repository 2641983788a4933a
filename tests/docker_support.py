"""The Docker skip mark shared by the sandbox, Shell and CodeRepair tests (a plain module, not
conftest: tests/fixtures/byo_repo has a conftest.py of its own, and the names would clash)."""

from __future__ import annotations

import pytest


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
