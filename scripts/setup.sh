#!/usr/bin/env bash
# Installs what Tandem's build and tests need, and only what is missing (idempotent, fast when
# everything is present). Versions and recipes: ../shared/TOOLCHAIN.md, docs/development.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: clang builds SQLite's C for wasm32; chromium runs the Playwright tests;
#    nginx is the reverse proxy the self-host test runs through (end2end/tests/proxy.spec.ts);
#    postgresql is the second backend, which the tests run on a throwaway cluster of their own
#    (scripts/pg-cluster.sh; Debian's default cluster is neither started nor used).
missing=()
command -v clang >/dev/null || missing+=(clang)
command -v llvm-ar >/dev/null || command -v llvm-ar-14 >/dev/null || missing+=(llvm)
command -v chromium >/dev/null || missing+=(chromium)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  # Packages must not start their services (nginx on port 80, PostgreSQL on 5432): the tests
  # start their own.
  no_start=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    no_start=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" lld >/dev/null
  [ -z "$no_start" ] || as_root rm -f /usr/sbin/policy-rc.d
fi

# 2. The wasm target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 3. cargo-leptos, without its run-time downloads (nothing but registries is reachable).
if ! cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION\$"; then
  log "cargo install cargo-leptos $CARGO_LEPTOS_VERSION (takes ~15 min once)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

# 4. wasm-bindgen CLI at exactly the version Cargo.lock uses.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$wb_version" ]; then
  echo "setup: cannot read wasm-bindgen's version from Cargo.lock" >&2
  exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wb_version" ]; then
  log "cargo install wasm-bindgen-cli $wb_version (takes ~5 min once)"
  # Not --locked: its lock file pins a crate missing from this registry (TOOLCHAIN.md).
  cargo install wasm-bindgen-cli --version "$wb_version" --force
fi

# 5. npm packages: wasm-opt from npm's binaryen (tools/), Playwright (end2end/).
npm_ci() {
  local dir=$1 stamp=$1/node_modules/.package-lock.json
  if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci tools
npm_ci end2end
log "tools ready"
