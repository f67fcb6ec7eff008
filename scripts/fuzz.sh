#!/usr/bin/env bash
# Fuzzes the untrusted-input parsers of crossarch-route (ELF headers and #! lines).
#
#   scripts/fuzz.sh            60 s per target with cargo-fuzz, or the corpus replay fallback
#   FUZZ_SECONDS=600 scripts/fuzz.sh elf
#
# cargo-fuzz needs nightly (-Z sanitizer). Without cargo-fuzz or a nightly toolchain this
# replays fuzz/corpus/** through the parsers with a normal test, so CI always exercises
# the corpus. New inputs the fuzzer finds land in fuzz/corpus/<target>/; crashes in
# fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(elf shebang)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

replay() {
  echo "fuzz: $1; replaying the corpus instead" >&2
  cargo test -p crossarch-route --test corpus
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  replay "cargo-fuzz is not installed (cargo install cargo-fuzz)"
  exit 0
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  # Stable compilers accept -Z flags when told they are building themselves.
  export RUSTC_BOOTSTRAP=1
  toolchain=()
fi

cd fuzz
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds}s" >&2
  # The fuzz target dir stays separate: sanitizer builds share nothing with normal ones.
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz" cargo "${toolchain[@]}" fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1
done
