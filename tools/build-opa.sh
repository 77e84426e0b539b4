#!/usr/bin/env bash
# Puts the pinned OPA at .tools/bin/opa: built from its Go module with the machine's Go
# (tools/opa pins the version; go.sum pins every module checksum), or, without Go, an
# `opa` already on PATH at the pinned version. Nothing is downloaded from a website.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.tools/bin/opa
pinned=$(awk '$1 == "require" && $2 == "github.com/open-policy-agent/opa" {print $3}' tools/opa/go.mod)
series=${pinned%.*}   # v1.22.3 -> v1.22
mkdir -p .tools/bin

if [ -n "${DATAVISA_OPA:-}" ]; then
  echo "using DATAVISA_OPA=$DATAVISA_OPA"
  ln -sf "$(realpath "$DATAVISA_OPA")" "$out"
  exit 0
fi

if command -v go >/dev/null 2>&1; then
  echo "building OPA $pinned from its Go module (first build takes a few minutes)..."
  (cd tools/opa && GOFLAGS=-buildvcs=false go build -trimpath -o ../../"$out".tmp .)
  mv "$out".tmp "$out"
  version=$("$out" version)  # captured first: a pipe into head would SIGPIPE under pipefail
  echo "${version%%$'\n'*}"
  exit 0
fi

found=$(command -v opa >/dev/null 2>&1 && opa version || true)
if [[ $'\n'"$found" == *$'\nVersion: '"${series#v}".* ]]; then
  echo "no Go found; using $(command -v opa) (${found%%$'\n'*})"
  ln -sf "$(command -v opa)" "$out"
  exit 0
fi

cat >&2 <<MSG
DataVisa needs OPA ${series}.x and cannot find or build it.
Install one of:
  - Go 1.26 or newer (Debian/Ubuntu: apt-get install golang-go; then run make again),
    and make builds OPA ${pinned} from its Go module into .tools/bin;
  - an opa ${series}.x binary on PATH, or point DATAVISA_OPA at one.
MSG
exit 1
