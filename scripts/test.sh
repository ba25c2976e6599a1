#!/usr/bin/env bash
# Builds and runs every test: warnings-as-errors Debug, then ASan+UBSan, then TSan.
# `scripts/test.sh dev` runs one preset only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
presets=("${@:-dev}")
(($#)) || presets=(dev asan tsan)
for p in "${presets[@]}"; do
  echo "=== preset $p"
  cmake --workflow --preset "$p"
done
