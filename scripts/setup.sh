#!/usr/bin/env bash
# Create or refresh the project's virtual environment at .venv (repository root).
#
# Cached: a stamp file holds a hash of pyproject.toml, this script and the repository path;
# while it matches and the venv imports the package, nothing is installed again.
# torch is installed first, pinned to the CPU wheel (torch==2.13.0), so that resolving the
# project's torch range never pulls a CUDA build.
# Env: PYTHON (interpreter to create the venv with, default python3), AEM_SETUP_FORCE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.aem-setup-stamp"
PY="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"

die() { echo "setup.sh: error: $*" >&2; exit 1; }

# Checks that the packages are installed without importing them (an import error in the
# work tree is the tests' business, not a reason to reinstall).
INSTALLED='import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("aem_envs", "aem_train", "torch", "pytest")))'
want="$(cat "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" <(echo "$ROOT") | sha256sum | cut -d' ' -f1)"

if [ "${AEM_SETUP_FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$VENV/bin/python" -c "$INSTALLED" >/dev/null 2>&1; then
    echo "setup.sh: .venv up to date"
    exit 0
fi

command -v "$PY" >/dev/null 2>&1 || die "$PY not found; install Python >= 3.10 or set PYTHON=<interpreter>"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$PY is older than Python 3.10"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup.sh: creating $VENV"
    "$PY" -m venv "$VENV" || die "could not create a venv with $PY (Debian: apt-get install python3-venv)"
fi
rm -f "$STAMP"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check --progress-bar off)
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(not torch.__version__.startswith('2.13.0'))" 2>/dev/null; then
    echo "setup.sh: installing $TORCH_PIN (CPU)"
    "${PIP[@]}" "$TORCH_PIN" || die "pip install $TORCH_PIN failed"
fi
echo "setup.sh: installing aem with dev extras (editable)"
"${PIP[@]}" -e "$ROOT[dev]" || die "pip install -e '.[dev]' failed"
"$VENV/bin/python" -c "$INSTALLED" || die "aem is not installed in $VENV after pip install"
echo "$want" > "$STAMP"
echo "setup.sh: .venv ready (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
