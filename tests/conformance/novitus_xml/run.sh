#!/usr/bin/env bash
# Conformance test: the unmodified Novitus XML client `litex-novitus-xml` 1.0.0 (from the
# Python package index, in a virtual environment) prints a receipt and a non-fiscal printout
# on `fiscald sim novitus-xml` over a pseudo-terminal. Its bytes (its own CRC form included)
# go through the emulator's decoder unchanged; the emulator's fiscal memory must then hold
# exactly the receipt the client was told was printed, with its Polish letters and markup
# characters, and nothing of the cancelled one.
#
# usage: tests/conformance/novitus_xml/run.sh   (FISCALD=/path/to/fiscald to skip the build;
#        FISCALD_NOVITUS_XML_VENV=DIR for the virtual environment, default
#        target/tmp/novitus-xml-venv)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target_dir" = /* ]] || target_dir="$root/$target_dir"
venv="${FISCALD_NOVITUS_XML_VENV:-$target_dir/tmp/novitus-xml-venv}"
bash "$here/venv.sh" "$venv"

if [[ -z "${FISCALD:-}" ]]; then
  (cd "$root" && cargo build --quiet --bin fiscald)
  FISCALD="$target_dir/debug/fiscald"
fi
[[ -x "$FISCALD" ]] || { echo "fiscald binary not found at $FISCALD" >&2; exit 1; }

tmp="$(mktemp -d)"
sim_pid=""
cleanup() {
  [[ -n "$sim_pid" ]] && { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- sim log ---"
  tail -n 50 "$tmp/sim.log" 2>/dev/null || true
  echo "novitus-xml conformance: 0 passed, 1 failed"
  exit 1
}

"$FISCALD" sim novitus-xml --link "$tmp/printer.tty" --state "$tmp/state.json" \
  >"$tmp/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do
  [[ -e "$tmp/printer.tty" ]] && break
  sleep 0.1
done
[[ -e "$tmp/printer.tty" ]] || fail "no emulator device at $tmp/printer.tty after 10 s"

timeout 120 "$venv/bin/python" "$here/client.py" "$tmp/printer.tty" "$tmp/client.json" \
  || fail "the litex-novitus-xml client failed"

"$venv/bin/python" - "$tmp/state.json" "$tmp/client.json" <<'PY' || fail "the emulator's memory does not match what the client was told"
import json, sys
state = json.load(open(sys.argv[1]))
seen = json.load(open(sys.argv[2]))
receipts = state["receipts"]
assert len(receipts) == 1, receipts
r = receipts[0]
assert [l["name"] for l in r["lines"]] == ["Żółć gęślą jaźń", 'Sok "Ąę" <1 l> & syn'], r
assert [l["amount"] for l in r["lines"]] == [900, 200], r
assert [l["unit"] for l in r["lines"]] == ["szt", "szt"], r
assert r["total"] == 1100, r
assert r["payments"] == [{"method": "card", "amount": 1100}], r
assert r["systemno"] == "litex-1", r
assert r["buyer_nip"] == "5260250274", r
assert state["printouts"][0]["lines"] == ["Łódź & <Kraków>", "Dziękujemy"], state["printouts"]
assert state["open_receipt"] is False and state["transaction"] is None, state
assert state["last_transaction"]["state"] == "canceled", state["last_transaction"]
assert ": 18 - " in seen["inactive_vat"], seen
assert seen["enq_after"]["lasttransactioncorrect"] == "yes", seen
assert seen["enq_after"]["lastcommanderror"] == "no", seen
assert seen["enq_cancelled"]["intransaction"] == "no", seen
assert seen["checkout"]["isfiscal"] == "yes", seen["checkout"]
assert dict(seen["taxrates"])["A"] == "23.00", seen["taxrates"]
assert dict(seen["taxrates"])["E"] == "free", seen["taxrates"]
assert seen["dle"] == {"online": "yes", "papererror": "no", "printererror": "no"}, seen["dle"]
PY
echo "novitus-xml conformance: 1 passed, 0 failed"
