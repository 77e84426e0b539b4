#!/usr/bin/env bash
# Puts Ory Hydra (a real OpenID Connect provider, for the identity tests only) at
# .tools/bin/hydra, built from its Go module at the version below. Hydra's go.mod replaces
# one dependency with Ory's fork, and replace directives apply only inside the module
# itself, so it is built there: a copy of the module the Go module proxy serves. Nothing
# is downloaded from a website. Without Go it says so, and the identity tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v2.3.0
out=.tools/bin/hydra
mkdir -p .tools/bin

if ! command -v go >/dev/null 2>&1; then
  echo "no Go found: Hydra is not built, and the identity tests skip" >&2
  exit 0
fi
echo "building Ory Hydra $version from its Go module (first build takes a few minutes)..."
src=$(go mod download -json "github.com/ory/hydra/v2@$version" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src"/. "$work" && chmod -R u+w "$work"
# The module's zip leaves out internal/httpclient (a module of its own): the proxy has it.
(cd "$work" && go mod edit -dropreplace github.com/ory/hydra-client-go/v2 &&
  CGO_ENABLED=1 GOFLAGS="-mod=mod -buildvcs=false" \
    go build -trimpath -tags sqlite,sqlite_omit_load_extension -o "$OLDPWD/$out.tmp" .)
mv "$out.tmp" "$out"
"$out" version | head -3 || true
