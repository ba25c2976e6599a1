#!/usr/bin/env bash
# Lints, then builds and runs every test: warnings-as-errors Debug, the fuzzers, ASan+UBSan, TSan.
# `scripts/test.sh dev` runs one preset only (and skips the lint).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
presets=("${@:-dev}")
if ((!$#)); then
  presets=(dev fuzz asan tsan)
  scripts/lint.sh
fi
for p in "${presets[@]}"; do
  echo "=== preset $p"
  cmake --workflow --preset "$p"
done
