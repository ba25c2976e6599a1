#!/usr/bin/env bash
# Installs the Debian 12 packages quiesce needs: `build` for the server, `test` adds what the
# tests drive it with and the linters. As root it installs them; otherwise it names them and stops.
set -euo pipefail
what=${1:-build}
build=(g++ cmake make libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev
       libboost-url1.81-dev libboost-test1.81-dev)
test=(python3 python3-websockets curl git clang-format clang-tidy)
pkgs=("${build[@]}")
[[ $what == test ]] && pkgs+=("${test[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
if [[ $(id -u) != 0 ]]; then
  echo "quiesce needs these Debian packages; as root run:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
