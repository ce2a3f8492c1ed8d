#!/usr/bin/env bash
# `npm test`, the README's test command: on a Debian machine with nothing but this clone and Node, installs what
# the suite needs when it is missing, then type-checks and runs every test. When everything is present it
# installs nothing (dpkg-query and a timestamp check: well under a second).
#
#   Debian packages  nats-server (private servers in the NATS tests), libvirt-clients (virsh for the conformance
#                    test), chromium + fonts-dejavu-core (the UI test), and libvirtd with qemu for the tests that
#                    run a private libvirtd (libvirt-daemon*, qemu-system-x86, qemu-utils, iproute2)
#   npm packages     npm ci when node_modules is missing or older than package-lock.json (which also builds dist/)
#
# Installing needs root (as in CI) or password-less sudo; otherwise it stops and prints the apt-get line to run.
# Extra arguments go to vitest: `npm test -- test/xml.unit.test.ts`.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  nats-server libvirt-clients chromium fonts-dejavu-core
  libvirt-daemon libvirt-daemon-system libvirt-daemon-system-sysv libvirt-daemon-driver-qemu
  qemu-system-x86 qemu-utils iproute2
)

install_debian_packages() {
  command -v dpkg-query >/dev/null 2>&1 || {
    echo "test-all: not a Debian system; make sure these are installed: ${DEBIAN_PACKAGES[*]}" >&2
    return 0
  }
  # One dpkg-query for all of them; a package dpkg has never heard of is simply not listed as installed.
  local present missing=() pkg
  present=" $(dpkg-query -W -f='${db:Status-Status}:${Package} ' "${DEBIAN_PACKAGES[@]}" 2>/dev/null || true) "
  for pkg in "${DEBIAN_PACKAGES[@]}"; do [[ "$present" == *" installed:$pkg "* ]] || missing+=("$pkg"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      echo "test-all: missing Debian packages: ${missing[*]}" >&2
      echo "test-all: install them as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "test-all: installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

install_npm_packages() {
  # npm ci writes node_modules/.package-lock.json; a package-lock.json changed since then means stale modules.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "test-all: npm ci"
    npm ci --no-audit --no-fund </dev/null
  fi
}

install_debian_packages
install_npm_packages
# nats-server and libvirtd live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

npx tsc --noEmit
npx vitest run "$@"
