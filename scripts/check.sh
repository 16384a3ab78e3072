#!/usr/bin/env bash
# Sets up .venv (from PyPI) and runs every check: ruff (lint and format), mypy strict, pytest.
# Extra arguments go to pytest (for example: bash scripts/check.sh --slow).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
echo "== ruff"
.venv/bin/ruff check fixseq tests benchmarks
.venv/bin/ruff format --check fixseq tests benchmarks
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
echo "== docs"
# Not --quiet: it also hides the warnings that --strict turns into a failure.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict
echo "== wheel"
# The sdist and the wheel as users install them, in a fresh venv outside this checkout.
bash scripts/check-wheel.sh
