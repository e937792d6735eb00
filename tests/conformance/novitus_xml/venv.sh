#!/usr/bin/env bash
# Make (or reuse) a virtual environment with the unmodified Novitus XML client
# `litex-novitus-xml` 1.0.0 from the Python package index (it brings pyserial and lxml).
#
# usage: tests/conformance/novitus_xml/venv.sh DIR
set -euo pipefail
venv="$1"
check='import importlib.metadata as m, sys; sys.exit(m.version("litex-novitus-xml") != "1.0.0")'
if "$venv/bin/python" -c "$check" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "litex-novitus-xml==1.0.0"
"$venv/bin/python" -c "$check"
