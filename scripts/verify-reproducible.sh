#!/usr/bin/env bash
# Build the release binary twice, from two copies of the source in different directories
# with separate target directories, and compare the sha256 of the two binaries.
#
#   scripts/verify-reproducible.sh            # from a git checkout: builds HEAD
#   scripts/verify-reproducible.sh v0.1.0     # or any commit
#   KEEP=1 scripts/verify-reproducible.sh     # keep the build directories
#
# Same source + same toolchain (rustc --version --verbose) + the remapped paths below ->
# the same sha256. Prints both hashes; exits 1 if they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
src="$PWD"
rev="$(git rev-parse "${1:-HEAD}^{commit}")"
work="$(mktemp -d "${TMPDIR:-/tmp}/fiscald-repro.XXXXXX")"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

build() {
    local dir="$1"
    mkdir -p "$dir/src"
    # The committed tree only (no target/, no untracked files).
    git -C "$src" archive --format=tar "$rev" | tar -x -C "$dir/src"
    (
        cd "$dir/src"
        # Every path that can end up in the binary is mapped to a fixed one.
        export RUSTFLAGS="--remap-path-prefix=$dir/src=/build/fiscald --remap-path-prefix=$dir/target=/build/target --remap-path-prefix=$cargo_home=/cargo"
        export CFLAGS="-ffile-prefix-map=$dir/src=/build/fiscald -ffile-prefix-map=$dir/target=/build/target -ffile-prefix-map=$cargo_home=/cargo"
        SOURCE_DATE_EPOCH="$(git -C "$src" log -1 --format=%ct "$rev")"
        export SOURCE_DATE_EPOCH
        CARGO_TARGET_DIR="$dir/target" cargo build --release --locked --bin fiscald --quiet
    )
    sha256sum "$dir/target/release/fiscald" | cut -d' ' -f1
}

echo "commit $rev"
rustc --version --verbose | sed -n '1p;/^host/p'
start=$(date +%s)
a=$(build "$work/a")
b=$(build "$work/one/more/level/b")
echo "build a: $a"
echo "build b: $b"
echo "took $(( $(date +%s) - start )) s for two builds"
if [ "$a" = "$b" ]; then
    echo "reproducible: the two builds are identical"
else
    echo "NOT reproducible: the two builds differ" >&2
    exit 1
fi
