#!/usr/bin/env bash
# Make (or reuse) a virtual environment with the unmodified NoviAPI client from the Python
# package index: `novitus-noviapi` 0.3.2 and what it depends on (needs Python 3.11+).
#
# usage: tests/conformance/noviapi/venv.sh DIR
set -euo pipefail
venv="$1"
check='import importlib.metadata as m, sys; sys.exit(m.version("novitus-noviapi") != "0.3.2")'
if "$venv/bin/python" -c "$check" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "novitus-noviapi==0.3.2"
"$venv/bin/python" -c "$check"
