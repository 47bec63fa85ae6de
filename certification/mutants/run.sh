#!/usr/bin/env bash
# Source mutants: each *.patch here breaks one rule in a copy of the gateway's source; this script
# builds each broken gateway and runs ikkuna-certify (mode 1) against it, limited to the requirement
# the patch names, and reports whether that requirement caught it.
#
#   certification/mutants/run.sh [PATCH ...]        # default: every certification/mutants/*.patch
#   certification/mutants/run.sh --check            # only: does every patch still apply? (CI)
#
# Needs `cargo build --bins -p ikkuna-certify` first (the suite binary). Each mutant recompiles the
# gateway crate (and its path dependencies) in target/mutants/, seeded with hard links from
# target/debug so registry dependencies are not rebuilt: a few minutes per mutant on two cores.
# Extra arguments for ikkuna-certify go in CERTIFY_ARGS (for example
# CERTIFY_ARGS="--omit-env IKKUNA_SERVER_WRITE_IDLE_TIMEOUT_MS" for a gateway without that key).
# Exit status: 0 when every mutant was caught by its requirement, 1 otherwise.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "${1:-}" = "--check" ]; then
    failed=0
    for patch in "$root"/certification/mutants/*.patch; do
        grep -q '^Expected-Requirement: [A-Z]*-[0-9]*$' "$patch" || { echo "no Expected-Requirement: $patch"; failed=1; }
        if (cd "$root" && patch -p1 --dry-run --quiet <"$patch" >/dev/null); then
            echo "applies: $(basename "$patch")"
        else
            echo "DOES NOT APPLY: $(basename "$patch")"; failed=1
        fi
    done
    exit "$failed"
fi
certify="$root/target/debug/ikkuna-certify"
out="${MUTANT_OUT:-$root/target/mutants/out}"
tgt="$root/target/mutants"
src="$root/target/mutant-src"
[ -x "$certify" ] || { echo "build the suite first: cargo build -p ikkuna-certify" >&2; exit 2; }
mkdir -p "$out"
if [ ! -d "$tgt/debug" ] && [ -d "$root/target/debug" ]; then
    # Hard links: unchanged dependency artefacts are shared, the mutant's own crates are new files.
    mkdir -p "$tgt" && cp -al "$root/target/debug" "$tgt/debug"
    rm -f "$tgt/debug/ikkuna" "$tgt/debug/ikkuna-certify"
fi

patches=("$@")
[ ${#patches[@]} -gt 0 ] || patches=("$root"/certification/mutants/*.patch)

table="$out/table.md"
printf '| mutant | breaks | expected | verdict of the expected requirement | caught |\n|---|---|---|---|---|\n' >"$table"
all_caught=0
for patch in "${patches[@]}"; do
    name="$(basename "$patch" .patch)"
    req="$(sed -n 's/^Expected-Requirement: //p' "$patch" | head -1)"
    what="$(sed -n 's/^Breaks: //p' "$patch" | head -1)"
    echo "== $name (expected: $req)"
    rm -rf "$src" && mkdir -p "$src"
    tar -C "$root" --exclude=./target --exclude=./.git --exclude=./fuzz/target -cf - . | tar -C "$src" -xf -
    if ! (cd "$src" && patch -p1 --quiet <"$patch"); then
        printf '| %s | %s | %s | patch does not apply | no |\n' "$name" "$what" "$req" >>"$table"
        all_caught=1
        continue
    fi
    if ! CARGO_TARGET_DIR="$tgt" cargo build --quiet --bin ikkuna --manifest-path "$src/Cargo.toml"; then
        printf '| %s | %s | %s | does not build | no |\n' "$name" "$what" "$req" >>"$table"
        all_caught=1
        continue
    fi
    cp "$tgt/debug/ikkuna" "$out/ikkuna-$name"
    status=0
    # shellcheck disable=SC2086
    "$certify" run --gateway-bin "$out/ikkuna-$name" --report-dir "$out/$name" --only "$req" \
        ${CERTIFY_ARGS:-} >"$out/$name.log" 2>&1 || status=$?
    verdict="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(x["verdict"] for x in r["requirements"] if x["id"]==sys.argv[2]))' \
        "$out/$name/report.json" "$req" 2>/dev/null || echo "no report")"
    caught=no
    if [ "$status" = 1 ] && [ "$verdict" = FAIL ]; then caught=yes; else all_caught=1; fi
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$what" "$req" "$verdict" "$caught" >>"$table"
done
cat "$table"
exit "$all_caught"
