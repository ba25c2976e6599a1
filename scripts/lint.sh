#!/usr/bin/env bash
# clang-format (check only) and clang-tidy (.clang-tidy) over every C++ source; non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
clang-format --dry-run -Werror $(git ls-files '*.cpp' '*.hpp')
cmake --preset dev >/dev/null  # the compile database clang-tidy reads
clang-tidy -p build/dev --quiet $(git ls-files 'app/*.cpp' 'net/*.cpp' 'stream/*.cpp' 'tasks/*.cpp' 'lifecycle/*.cpp' 'support/*.cpp' 'command/*.cpp' 'cli/*.cpp' 'bench/*.cpp') \
  2> >(grep -v 'warnings generated' >&2)
echo "lint: clang-format and clang-tidy clean"
