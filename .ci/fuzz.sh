#!/usr/bin/env bash
# Coverage-guided fuzz smoke: builds every cargo-fuzz target in fuzz/ once, runs each
# for a bounded time from its seed corpus (fuzz/corpus/<target>/), fails on any crash, and prints
# the executions per target from libFuzzer's final statistics.
#
#   bash .ci/fuzz.sh                       # every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=300 bash .ci/fuzz.sh dvv_json   # one target, longer
#
# Needs the nightly toolchain (libFuzzer's coverage instrumentation is nightly-only); installs
# cargo-fuzz if it is missing. New inputs found during a run go to a temporary directory, never
# into the repository's seed corpora. A crash leaves its input in that directory's artifacts/ and
# is printed in base64 so it can be turned into a regression test.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
# --sanitizer none: the fuzzed code is safe Rust, where AddressSanitizer finds nothing that the
# panics of debug assertions and overflow checks (on in this build) do not; without it the build
# is smaller and each target runs several times more inputs in the same seconds.
# --dev: the fuzz crate's dev profile (opt-level 1, fuzz/Cargo.toml) builds the gateway's ~300
# crates with less CPU than cargo-fuzz's default release build (one codegen unit, opt-level 3),
# and ran as many inputs per second here; overflow checks and debug assertions stay on.
FUZZ_FLAGS=(--dev --sanitizer none)
# Optional: a target dir of its own (e.g. to keep an earlier build); cargo-fuzz's default otherwise.
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
    FUZZ_FLAGS+=(--target-dir "${FUZZ_TARGET_DIR}")
fi

started=$(date +%s)

if ! cargo "+${FUZZ_TOOLCHAIN}" --version >/dev/null 2>&1; then
    rustup toolchain install "${FUZZ_TOOLCHAIN}" --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -qF "${CARGO_FUZZ_VERSION}"; then
    cargo install cargo-fuzz --version "${CARGO_FUZZ_VERSION}" --locked
fi
cargo "+${FUZZ_TOOLCHAIN}" --version
cargo fuzz --version

# The fuzz crate is its own workspace, outside `cargo fmt --all`. Its lockfile starts as the
# root's (so the gateway is fuzzed with exactly the dependency versions it ships with); cargo then
# adds only the fuzz-only crates (libfuzzer-sys, arbitrary). Not committed: it would go stale each
# time the root's dependencies change.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cp Cargo.lock fuzz/Cargo.lock

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+${FUZZ_TOOLCHAIN}" fuzz list)
fi

build_started=$(date +%s)
cargo "+${FUZZ_TOOLCHAIN}" fuzz build "${FUZZ_FLAGS[@]}"
build_seconds=$(($(date +%s) - build_started))

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
    log="$work/$target.log"
    printf '\n---- fuzz %s for %ss ----\n' "$target" "$FUZZ_SECONDS"
    status=0
    cargo "+${FUZZ_TOOLCHAIN}" fuzz run "${FUZZ_FLAGS[@]}" "$target" \
        "$work/corpus/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$target/" >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|INFO: seed corpus)' "$log" || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        tail -n 60 "$log"
        for artifact in "$work/artifacts/$target"/*; do
            [ -f "$artifact" ] || continue
            echo "crash input $(basename "$artifact") (base64): $(base64 -w0 "$artifact")"
        done
    fi
    summary+=("$(printf '%-20s %12s executions  %s' "$target" "${execs:-?}" \
        "$([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)")")")
done

printf '\n---- fuzz summary (%ss per target; build %ss; total %ss) ----\n' \
    "$FUZZ_SECONDS" "$build_seconds" "$(($(date +%s) - started))"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: fuzz targets failed: ${failed[*]}" >&2
    exit 1
fi
