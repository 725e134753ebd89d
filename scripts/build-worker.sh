#!/usr/bin/env bash
# Builds the browser worker (crate `worker`) into public/worker/, which cargo-leptos copies into
# the site: cargo (wasm32, profile wasm-release) -> wasm-bindgen --target web -> wasm-opt -Oz.
# Run before every cargo-leptos build (the Makefile does). Why a separate wasm: ARCHITECTURE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${WORKER_PROFILE:-wasm-release}
target_dir=${CARGO_TARGET_DIR:-target}
out=public/worker

cargo build -p worker --target wasm32-unknown-unknown --profile "$profile"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
wasm-bindgen --target web --no-typescript --out-dir "$out.tmp" --out-name tandem_worker \
  "$target_dir/wasm32-unknown-unknown/$profile/worker.wasm"
# The same wasm-opt flags cargo-leptos uses for the page's wasm.
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  "$out.tmp/tandem_worker_bg.wasm" -o "$out.tmp/tandem_worker_bg.wasm"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "worker: $(wc -c < "$out/tandem_worker_bg.wasm") bytes wasm in $out/"
