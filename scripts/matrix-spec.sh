#!/usr/bin/env bash
# Prints the directory of the Matrix spec sources that the spec-driven tests read (OpenAPI and
# JSON schemas, the push rules module), in this order:
#   1. ../shared/matrix-spec beside the repository (the offline copy CI has);
#   2. $MATRIX_SPEC_DIR;
#   3. a shallow clone of matrix-org/matrix-spec at the commit the tests were written against,
#      cached in ${XDG_CACHE_HOME:-~/.cache}/dendrite-lite/.
# Exits 2 with what to do when none of them works: the spec-driven tests are never skipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# The offline copy's commit (its README); override both only to test this script.
commit=${MATRIX_SPEC_COMMIT:-d0ba2aaef801e0134a4e5c6054a2c2f41bb55531}
repo=${MATRIX_SPEC_REPO:-https://github.com/matrix-org/matrix-spec}

usable() { [ -d "$1/data/api/client-server" ]; }

if usable "$root/../shared/matrix-spec"; then
  (cd "$root/../shared/matrix-spec" && pwd)
  exit 0
fi
if [ -n "${MATRIX_SPEC_DIR:-}" ]; then
  if usable "$MATRIX_SPEC_DIR"; then
    (cd "$MATRIX_SPEC_DIR" && pwd)
    exit 0
  fi
  echo "error: MATRIX_SPEC_DIR=$MATRIX_SPEC_DIR is not a checkout of matrix-org/matrix-spec" \
       "(no data/api/client-server in it)" >&2
  exit 2
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/dendrite-lite/matrix-spec-$commit"
if ! usable "$cache"; then
  echo "fetching the Matrix spec ($repo at ${commit:0:12}) into $cache" >&2
  tmp="$cache.partial.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  if ! { git -C "$tmp" init -q && git -C "$tmp" fetch -q --depth 1 "$repo" "$commit" \
         && git -C "$tmp" -c advice.detachedHead=false checkout -q FETCH_HEAD; } >&2; then
    rm -rf "$tmp"
    cat >&2 <<MSG
error: the tests need the Matrix spec sources and none were found:
  - no ../shared/matrix-spec beside the repository,
  - MATRIX_SPEC_DIR is not set,
  - and fetching $repo at $commit failed (no network?).
Clone it yourself and point the tests at it:
  git clone https://github.com/matrix-org/matrix-spec /path/to/matrix-spec
  git -C /path/to/matrix-spec checkout $commit
  MATRIX_SPEC_DIR=/path/to/matrix-spec bash scripts/test.sh
MSG
    exit 2
  fi
  rm -rf "$cache" && mv "$tmp" "$cache"
fi
echo "$cache"
