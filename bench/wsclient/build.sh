#!/usr/bin/env bash
# Builds the fan-out load client from Debian's packages only (no module downloads):
#   bench/wsclient/build.sh [OUT_DIR]   → OUT_DIR/wsclient (default /tmp/bench-bin)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v go >/dev/null || [[ ! -d /usr/share/gocode/src/github.com/gorilla/websocket ]]; then
  apt-get update -qq && apt-get install -y -qq golang-go golang-github-gorilla-websocket-dev
fi
out=${1:-/tmp/bench-bin}; mkdir -p "$out"
cd "$here" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o "$out/wsclient" .
echo "$out/wsclient"
