#!/usr/bin/env bash
# No silent skips: a test that cannot run here must say so in the summary a user sees, never pass
# by returning early. Run from the repository root: `bash .ci/check-skips.sh`.
#   1. every #[ignore] gives its reason and the command that runs it ("run: ...");
#   2. no test prints a skip notice (eprintln!/println! of "skip", "SKIPPED", "NOTICE") instead of
#      running: a missing tool fails the (ignored) test that needs it.
# CI then runs the ignored tests with `--ignored` (see .ci/run), so each of them passes for real.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

status=0
sources=$(git ls-files '*.rs')

bare=$(grep -nE '^\s*#\[ignore\]' $sources || true)
if [ -n "$bare" ]; then
    echo "error: #[ignore] without a reason (write #[ignore = \"needs X (install); run: COMMAND\"]):"
    echo "$bare"
    status=1
fi

undocumented=$(grep -nE '#\[ignore = "' $sources | grep -v 'run: ' || true)
if [ -n "$undocumented" ]; then
    echo "error: #[ignore] whose reason names no command to run it (\"run: ...\"):"
    echo "$undocumented"
    status=1
fi

notices=$(grep -nE '(eprintln|println)!\(.*(SKIPPED|[Ss]kipp(ed|ing)|NOTICE)' $sources || true)
if [ -n "$notices" ]; then
    echo "error: a test prints a skip notice instead of running or being #[ignore]d:"
    echo "$notices"
    status=1
fi

if [ "$status" -eq 0 ]; then
    echo "no silent skips: $(grep -cE '#\[ignore = "' $sources | awk -F: '{s+=$2} END {print s}') ignored test(s), each with its reason and command"
fi
exit "$status"
