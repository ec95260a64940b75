#!/usr/bin/env bash
# Installs the system packages the product's tests and demo use (Debian/Ubuntu, as root or
# with sudo), and the Rust components lint uses. Safe to run again: it skips what is there.
set -euo pipefail

# `make lint` runs cargo clippy and cargo fmt: rustup toolchains may come without them.
components=()
cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
if [ ${#components[@]} -gt 0 ]; then
  echo "setup-system: adding rust components ${components[*]}"
  rustup component add "${components[@]}"
fi

# dynoxide: the local DynamoDB (SQLite-backed, in Rust) the store tests and the DynamoDB demo
# start on 127.0.0.1 (tests/local_aws.py). Built from crates.io: 6 CPU-minutes, 12 min on 2 busy cores.
DYNOXIDE_VERSION=3.2.0
if ! command -v dynoxide >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/dynoxide" ]; then
  echo "setup-system: installing dynoxide ${DYNOXIDE_VERSION} (cargo install, a few minutes)"
  cargo install --quiet --locked dynoxide-rs --version "${DYNOXIDE_VERSION}"
fi

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
# The console's browser tests (tests/gateway) drive Debian's headless chromium through its driver.
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)

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
