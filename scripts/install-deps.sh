#!/usr/bin/env bash
# Installs what quiesce needs on Debian 12: `build` for the server; `test` adds what the tests
# drive it with, the linters, podman for the container test and the npm packages of tests/k8s.
# As root it installs them; otherwise it names them and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-build}
build=(g++ cmake make libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev
       libboost-url1.81-dev libboost-test1.81-dev libsqlite3-dev libpq-dev prometheus-cpp-dev)
# Podman's recommends are many; these are the ones `podman kube play` with ports needs.
test=(python3 python3-websockets python3-yaml curl git clang-format clang-tidy clang libclang-rt-14-dev
      podman runc netavark aardvark-dns iptables catatonit debootstrap chromium
      postgresql-15 postgresql-client-15)
pkgs=("${build[@]}")
if [[ $what == test ]]; then
  pkgs+=("${test[@]}")
  # Node.js may come from elsewhere (NodeSource bundles npm); Debian's packages otherwise.
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "quiesce needs these Debian packages; as root run:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ $what == test ]] || exit 0

# Podman as this machine runs it: runc, and limits the sandbox accepts. An existing file is kept.
if [[ $(id -u) == 0 && ! -e /etc/containers/containers.conf ]]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n' \
    >/etc/containers/containers.conf
fi
# The npm packages of the manifest validator (tests/k8s) and of the web checks (tests/web), as
# pinned in their package-lock.json. Without the npm registry those checks are skipped (with
# this reason); everything else still runs.
for dir in tests/k8s tests/web; do
  if [[ ! -d $dir/node_modules ]]; then
    NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt} \
      npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error ||
      echo "install-deps: npm ci in $dir failed: its checks will be skipped" >&2
  fi
done
