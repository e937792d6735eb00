#!/usr/bin/env bash
# Conformance test: the unmodified NoviAPI client `novitus-noviapi` 0.3.2 (from the Python
# package index, in a virtual environment) drives fiscald's NoviAPI facade, which prints on
# `fiscald sim posnet`; the emulator's fiscal memory must then hold exactly the receipts and
# the daily report the client was told were done.
#
# usage: tests/conformance/noviapi/run.sh   (FISCALD=/path/to/fiscald to skip the build;
#        FISCALD_NOVIAPI_VENV=DIR for the virtual environment, default target/tmp/noviapi-venv)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target_dir" = /* ]] || target_dir="$root/$target_dir"
venv="${FISCALD_NOVIAPI_VENV:-$target_dir/tmp/noviapi-venv}"

# The client: the same virtual environment tests/e2e_noviapi.rs uses.
bash "$here/venv.sh" "$venv"

if [[ -z "${FISCALD:-}" ]]; then
  (cd "$root" && cargo build --quiet --bin fiscald)
  FISCALD="$target_dir/debug/fiscald"
fi
[[ -x "$FISCALD" ]] || { echo "fiscald binary not found at $FISCALD" >&2; exit 1; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for log in sim daemon; do
    echo "--- $log log ---"
    tail -n 50 "$tmp/$log.log" 2>/dev/null || true
  done
  echo "noviapi conformance: 0 passed, 1 failed"
  exit 1
}

"$FISCALD" sim posnet --link "$tmp/printer.tty" --state "$tmp/state.json" >"$tmp/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [[ -e "$tmp/printer.tty" ]] && break
  sleep 0.1
done
[[ -e "$tmp/printer.tty" ]] || fail "no emulator device at $tmp/printer.tty after 10 s"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$tmp/fiscald.toml" <<EOF
[api]
socket = "$tmp/api.sock"
[journal]
path = "$tmp/journal.db"

[[printer]]
id = "fp1"
protocol = "posnet"
port = "$tmp/printer.tty"
baud = 115200

[noviapi]
listen = "127.0.0.1:$port"
role = "manager"
EOF
FISCALD_LOG=info "$FISCALD" serve --config "$tmp/fiscald.toml" >"$tmp/daemon.log" 2>&1 &
pids+=($!)
python3 - "$tmp/api.sock" <<'PY' || fail "the printer did not become ready"
import socket, sys, time

for _ in range(300):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sys.argv[1])
        s.sendall(b"GET /v1/devices HTTP/1.0\r\nHost: localhost\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        if b'"state":"ready"' in data:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("not ready after 30 s")
PY

"$venv/bin/python" "$here/client.py" "http://127.0.0.1:$port" "$tmp/result.json" ||
  fail "the NoviAPI client failed"

python3 - "$tmp/state.json" "$tmp/result.json" <<'EOF' || fail "the emulator's memory does not hold what the client was told"
import json, sys

state = json.load(open(sys.argv[1]))
result = json.load(open(sys.argv[2]))
receipts = state.get("receipts") or []
numbers = [r["number"] for r in receipts]
if sorted(numbers) != sorted(result["receipts"]):
    sys.exit(f"receipts printed {numbers}, the client was told {result['receipts']}")
footers = [r.get("footer") for r in receipts]
if footers != [["Nr sys.: POS-1/1"], ["Nr sys.: POS-1/2"]]:
    sys.exit(f"each receipt once, in order: {footers}")
if [r["total"] for r in receipts] != [1200, 1200]:
    sys.exit(f"totals {[r['total'] for r in receipts]}")
if len(state.get("daily_reports") or []) != 1:
    sys.exit(f"daily reports: {state.get('daily_reports')}")
EOF

grep -q 'eyJ' "$tmp/daemon.log" && fail "a token was written to the log"
echo "noviapi conformance: 1 passed, 0 failed"
