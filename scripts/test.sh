#!/usr/bin/env bash
# The one test command: set up .venv, start the Docker engine, build the images, run pytest.
#
#   bash scripts/test.sh                 # everything, slow and docker tests included
#   bash scripts/test.sh -k images -x    # extra arguments go to pytest
#   AEM_NO_DOCKER=1 bash scripts/test.sh # no engine/images; runs -m "not docker"
#
# Each step is cached (venv stamp, running daemon, image content-hash labels), so a second
# run only runs the tests. Exits non-zero on any failure, and also when no test ran.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n== %s\n' "$*"; }
t_start=$SECONDS

step "python environment (scripts/setup.sh)"
bash scripts/setup.sh

marker=()
if [ "${AEM_NO_DOCKER:-0}" = 1 ]; then
    echo "AEM_NO_DOCKER=1: skipping the engine, the images and the docker tests"
    marker=(-m "not docker")
else
    step "docker engine (scripts/engine.sh)"
    bash scripts/engine.sh
    step "images (aem-envs images build)"
    .venv/bin/aem-envs images build
    # The engine and images are set up now: a docker test that would skip is a failure.
    export AEM_REQUIRE_DOCKER=1
fi
echo "set-up took $((SECONDS - t_start)) s"

step "tests (pytest)"
# A per-test timeout keeps one hung test from eating the whole CI budget; later --timeout
# arguments override it.
set +e
.venv/bin/python -m pytest --timeout=900 "${marker[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "test.sh: error: pytest collected no tests" >&2
    exit 1
fi
echo "test.sh: pytest exit $rc, total $((SECONDS - t_start)) s"
exit "$rc"
