#!/usr/bin/env bash
# Fuzzes crossarch's untrusted-input parsers: ELF headers (elf), #! lines (shebang), the shim's
# config and runtime options (config), args[0] resolution inside a generated container root
# (resolve), and what containerd writes on the start action's stdin (bootstrap).
#
#   scripts/fuzz.sh                      60 s per target with cargo-fuzz, or the corpus replay
#   FUZZ_SECONDS=600 scripts/fuzz.sh elf
#   FUZZ_RUNS=10000000 scripts/fuzz.sh resolve     stop after that many executions instead
#   FUZZ_SANITIZER=none scripts/fuzz.sh config       no AddressSanitizer: about twice the
#                                                    executions per second for safe Rust code
#
# cargo-fuzz is not installed by any script; install it once with
#
#   cargo install cargo-fuzz --locked
#
# It needs nightly (-Z sanitizer): `rustup toolchain install nightly`, or a stable compiler
# with RUSTC_BOOTSTRAP=1, which this script sets when there is no nightly. Without cargo-fuzz
# this replays fuzz/corpus/** through the same property checks with normal tests, so CI
# always exercises the corpus.
#
# The committed corpus, fuzz/corpus/<target>/, is only read. New inputs the fuzzer keeps go to
# $FUZZ_WORK/<target>/ (fuzz/work/ by default, not committed; minimise it with `cargo fuzz
# cmin` before adding anything to the committed corpus). Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
runs="${FUZZ_RUNS:-}"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(elf shebang config resolve bootstrap handed)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
work="${FUZZ_WORK:-$PWD/fuzz/work}"
sanitizer="${FUZZ_SANITIZER:-address}"

replay() {
  echo "fuzz: $1; replaying the corpus instead" >&2
  cargo test -p crossarch-route --test corpus
  cargo test -p crossarch-shim --test config_corpus
  cargo test -p crossarch-shim --test bootstrap_corpus
  cargo test -p crossarch-init --test handed_corpus
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  replay "cargo-fuzz is not installed (install it with: cargo install cargo-fuzz --locked)"
  exit 0
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  # Stable compilers accept -Z flags when told they are building themselves.
  export RUSTC_BOOTSTRAP=1
  toolchain=()
fi

if [ -n "$runs" ]; then
  limit=(-runs="$runs")
  what="$runs executions"
else
  limit=(-max_total_time="$seconds")
  what="${seconds}s"
fi

cd fuzz
for t in "${targets[@]}"; do
  echo "fuzz: $t for $what" >&2
  mkdir -p "$work/$t"
  # The fuzz target dir stays separate: sanitizer builds share nothing with normal ones, nor
  # with each other.
  dir="$CARGO_TARGET_DIR/fuzz"
  [ "$sanitizer" = address ] || dir="$dir-$sanitizer"
  CARGO_TARGET_DIR="$dir" cargo "${toolchain[@]}" fuzz run -s "$sanitizer" "$t" \
    "$work/$t" "corpus/$t" -- \
    "${limit[@]}" -max_len=8192 -timeout=10 -print_final_stats=1
done
