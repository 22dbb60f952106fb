#!/usr/bin/env bash
# Builds the web app into web/pkg (WebAssembly + JavaScript glue). With --serve, then serves
# web/ at http://localhost:8080 (WebGPU needs localhost or https).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -q " $version"; then
  cargo install wasm-bindgen-cli --version "$version"
fi
# The `web` profile (Cargo.toml) favours size: the page downloads it.
cargo rustc --profile web --lib --crate-type cdylib --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir web/pkg \
  target/wasm32-unknown-unknown/web/resnet_wgpu.wasm
ls -l web/pkg/resnet_wgpu_bg.wasm
echo "built web/pkg"
if [[ "${1:-}" == "--serve" ]]; then
  echo "serving http://localhost:8080 (Ctrl-C to stop)"
  exec python3 -m http.server 8080 --bind 127.0.0.1 --directory web
fi
