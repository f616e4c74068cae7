#!/usr/bin/env bash
# Print the path of a Python >= 3.12 (stream-dse 2.1.1 requires it), preferring 3.12, the version the project is
# tested on: first on PATH, then among pyenv's installed versions (pyenv may have 3.12 installed without putting it
# on PATH). Exit 1 with a one-line message if there is none.
set -euo pipefail

is_recent() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

roots=()
if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)"); fi
roots+=("${PYENV_ROOT:-$HOME/.pyenv}")

for minor in 12 13 14; do
    if candidate=$(command -v "python3.$minor" 2>/dev/null) && is_recent "$candidate"; then
        echo "$candidate"; exit 0
    fi
    for root in "${roots[@]}"; do
        for candidate in $(ls -d "$root"/versions/3."$minor".*/bin/python3 2>/dev/null | sort -V -r); do
            if is_recent "$candidate"; then echo "$candidate"; exit 0; fi
        done
    done
done
for name in python3 python; do
    if candidate=$(command -v "$name" 2>/dev/null) && is_recent "$candidate"; then echo "$candidate"; exit 0; fi
done

echo "error: stream-trapti needs Python >= 3.12 (stream-dse 2.1.1 requires it); none found on PATH or under pyenv: install one, e.g. 'pyenv install 3.12'." >&2
exit 1
