#!/usr/bin/env bash
# Installs the system packages the product's tests and demo use (Debian/Ubuntu, as root or
# with sudo). Safe to run again: it skips what is already there.
set -euo pipefail

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)

if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: please install: ${packages[*]}" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup-system: installing ${packages[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# Debian starts the packaged service; the tests start their own servers on free ports.
$sudo service redis-server stop >/dev/null 2>&1 || true
