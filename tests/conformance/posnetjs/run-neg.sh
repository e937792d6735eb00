#!/usr/bin/env bash
# Conformance test: the independent POSNET client `posnetjs` (npm) prints a receipt on
# `fiscald sim posnet`, and the emulator's fiscal memory must then hold exactly that receipt.
#
# usage: tests/conformance/posnetjs/run.sh   (FISCALD=/path/to/fiscald to skip the build)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

for tool in npm node python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not found"
    exit 0
  fi
done

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

if [[ -z "${FISCALD:-}" ]]; then
  (cd "$root" && cargo build --release --quiet --bin fiscald)
  target_dir="${CARGO_TARGET_DIR:-$root/target}"
  [[ "$target_dir" = /* ]] || target_dir="$root/$target_dir"
  FISCALD="$target_dir/release/fiscald"
fi
[[ -x "$FISCALD" ]] || { echo "fiscald binary not found at $FISCALD" >&2; exit 1; }

tmp="$(mktemp -d)"
sim_pid=""
cleanup() {
  if [[ -n "$sim_pid" ]]; then
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- emulator log ---"
  cat "$tmp/sim.log" 2>/dev/null || true
  echo "--- end of emulator log ---"
  echo "posnetjs conformance: 0 passed, 1 failed"
  exit 1
}

RUST_LOG="${RUST_LOG:-debug}" "$FISCALD" sim posnet --link "$tmp/printer.tty" \
  --state "$tmp/state.json" --baud 9600 >"$tmp/sim.log" 2>&1 &
sim_pid=$!

for _ in $(seq 1 100); do
  [[ -e "$tmp/printer.tty" ]] && break
  kill -0 "$sim_pid" 2>/dev/null || fail "the emulator exited before publishing its device"
  sleep 0.1
done
[[ -e "$tmp/printer.tty" ]] || fail "no device at $tmp/printer.tty after 10 s"

if ! (cd "$here" && node receipt.mjs "$tmp/printer.tty"); then
  fail "posnetjs could not print the receipt"
fi

if ! python3 - "$tmp/state.json" <<'EOF'
import json, sys

with open(sys.argv[1]) as f:
    state = json.load(f)

def expect(what, got, want):
    if got != want:
        sys.exit(f"state: {what} is {got!r}, expected {want!r}")

receipts = state.get("receipts")
expect("the number of receipts", len(receipts or []), 1)
r = receipts[0]
lines = [
    {k: l.get(k) for k in ("name", "vat", "quantity", "unit_price", "amount")}
    for l in r["lines"]
]
expect("lines", lines, [
    {"name": "Chleb razowy", "vat": "A", "quantity": "2", "unit_price": 450, "amount": 900},
    {"name": "Mleko 3.2%", "vat": "B", "quantity": "1", "unit_price": 349, "amount": 349},
    {"name": "Jablka", "vat": "C", "quantity": "1.5", "unit_price": 600, "amount": 900},
])
expect("payments", [(p["method"], p["amount"]) for p in r["payments"]],
       [("card", 1000), ("cash", 1149)])
expect("total", r["total"], 2150)
expect("change", r.get("change", 0), 0)
expect("buyer NIP", r.get("buyer_nip"), "5260001246")
expect("open_receipt", state.get("open_receipt", False), False)
EOF
then
  fail "the emulator's fiscal memory does not hold the expected receipt"
fi

echo "posnetjs conformance: 1 passed, 0 failed"
