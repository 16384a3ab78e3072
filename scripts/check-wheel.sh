#!/usr/bin/env bash
# Checks fixseq as a user installs it, not as the editable checkout the suite runs on:
# builds the sdist and the wheel (the wheel from the sdist, as pip would from PyPI), checks what
# each archive holds, installs the wheel (not editable, with its [testing] extra) into a fresh
# venv outside the checkout, and there runs `fixseq --help`, `fixseq demo`, `import fixseq.testing`
# and `mypy --strict` on a small consumer file (which fails unless py.typed ships).
# Every step that fails is named on stderr; the script exits 1 if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fixseq-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
FAILED=()
fail() { echo "check-wheel: FAILED: $*" >&2; FAILED+=("$*"); }
step() { echo "-- $*"; }

# Run from a directory with no fixseq/ in it, so that `import fixseq` can only find the wheel.
cd "$WORK"

step "build sdist and wheel"
python3 -m venv "$WORK/build-venv"
quiet_pip() { "$1" -m pip install --quiet "${@:2}" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log" >&2; return 1; }; }
quiet_pip "$WORK/build-venv/bin/python" build hatchling || { echo "check-wheel: FAILED: installing build" >&2; exit 1; }
# python -m build builds the sdist, then the wheel from the unpacked sdist: a file the wheel
# needs but the sdist leaves out breaks here.
if ! "$WORK/build-venv/bin/python" -m build --no-isolation --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    echo "check-wheel: FAILED: build (sdist and wheel)" >&2
    exit 1
fi
SDIST=$(ls "$WORK"/dist/fixseq-*.tar.gz)
WHEEL=$(ls "$WORK"/dist/fixseq-*.whl)

step "archive contents"
"$WORK/build-venv/bin/python" - "$SDIST" "$WHEEL" <<'EOF' || fail "archive contents"
import sys, tarfile, zipfile

sdist, wheel = sys.argv[1:]
with tarfile.open(sdist) as archive:
    # Names under the top directory fixseq-VERSION/.
    in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
with zipfile.ZipFile(wheel) as archive:
    in_wheel = set(archive.namelist())
problems = []
for needed in ("pyproject.toml", "README.md", "CHANGELOG.md", "mypy.ini", "mkdocs.yml",
               "fixseq/__init__.py", "fixseq/py.typed", "fixseq/testing/__init__.py",
               "tests/conftest.py", "docs/index.md", "docs/stores/sqlite.md"):
    if needed not in in_sdist:
        problems.append(f"sdist lacks {needed}")
for unwanted in (".venv/", ".git/", ".ci/", "site/"):
    if any(name.startswith(unwanted) for name in in_sdist):
        problems.append(f"sdist holds {unwanted}")
for needed in ("fixseq/__init__.py", "fixseq/py.typed", "fixseq/cli.py",
               "fixseq/testing/__init__.py"):
    if needed not in in_wheel:
        problems.append(f"wheel lacks {needed}")
if not any(name.endswith(".dist-info/entry_points.txt") for name in in_wheel):
    problems.append("wheel has no entry_points.txt (no fixseq command)")
for name in sorted(in_wheel):
    top = name.split("/", 1)[0]
    if top != "fixseq" and not top.endswith(".dist-info"):
        problems.append(f"wheel holds {name} outside the package")
for problem in problems:
    print(problem, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

step "install the wheel into a fresh venv"
python3 -m venv "$WORK/user-venv"
PY="$WORK/user-venv/bin/python"
if ! quiet_pip "$PY" "${WHEEL}[testing]" mypy; then
    echo "check-wheel: FAILED: pip install of the wheel" >&2
    exit 1
fi
# Not an editable install, and not this checkout.
"$PY" - "$REPO" <<'EOF' || fail "installed location"
import pathlib, sys
import fixseq
where = pathlib.Path(fixseq.__file__).resolve()
repo = pathlib.Path(sys.argv[1]).resolve()
if repo in where.parents:
    sys.exit(f"fixseq imported from the checkout ({where}), not from the wheel")
EOF

step "fixseq --help"
"$WORK/user-venv/bin/fixseq" --help >"$WORK/help.txt" || fail "fixseq --help"

step "fixseq demo"
mkdir "$WORK/demo"
(cd "$WORK/demo" && timeout 60 "$WORK/user-venv/bin/fixseq" demo >"$WORK/demo.txt" 2>&1) \
    || { cat "$WORK/demo.txt" >&2; fail "fixseq demo"; }

step "import fixseq.testing"
"$PY" -c "import fixseq.testing" || fail "import fixseq.testing"

step "mypy --strict on a consumer"
mkdir "$WORK/consumer"
cat >"$WORK/consumer/consumer.py" <<'EOF'
"""A user's module: type-checks against the installed wheel only if py.typed ships."""

from pathlib import Path

import fixseq
from fixseq import FileSeqStore, MemorySeqStore, SeqState, SeqStore, SqliteSeqStore, open_store
from fixseq.testing import check_seq_store


def first_number(store: SeqStore) -> int:
    number: int = store.next_out()
    return number


def state_of(path: Path) -> SeqState:
    with FileSeqStore(path) as store:
        return store.snapshot()


def sqlite_next(path: Path) -> int:
    with SqliteSeqStore(path, session="demo") as store:
        return first_number(store)


memory = MemorySeqStore()
print(first_number(memory), fixseq.__version__, open_store, check_seq_store)
EOF
(cd "$WORK/consumer" && "$WORK/user-venv/bin/mypy" --strict --no-incremental consumer.py) \
    || fail "mypy --strict on a consumer (is py.typed in the wheel?)"

step "user-facing pointers to repository files"
# A message that sends the user to docs/... or tests/... points at nothing a wheel installs.
"$PY" - "$WORK/help.txt" <<'EOF' || fail "pointers to files not in the wheel (see above)"
import ast, pathlib, re, sys
import fixseq

pointer = re.compile(r"\b(?:docs|tests|benchmarks|scripts)/[\w./-]*")
found = [f"fixseq --help: {m}" for m in pointer.findall(pathlib.Path(sys.argv[1]).read_text())]
for path in sorted(pathlib.Path(fixseq.__file__).parent.rglob("*.py")):
    tree = ast.parse(path.read_text(), str(path))
    # Docstrings and comments are for developers reading the source; other strings reach users.
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings and pointer.search(node.value)):
            found.append(f"{path.relative_to(path.parents[1])}:{node.lineno}: {node.value!r}")
for line in found:
    print(line, file=sys.stderr)
sys.exit(1 if found else 0)
EOF

if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "check-wheel: ${#FAILED[@]} step(s) failed:" >&2
    printf '  - %s\n' "${FAILED[@]}" >&2
    exit 1
fi
echo "check-wheel: the sdist and the installed wheel are fine"
