# shellcheck shell=bash
# The smoltcp this project builds on, stock or with patches/ applied; sourced by the scripts
# that build against the patched copy (scripts/smoltcp-patched.sh, scripts/tap-loss.sh). Run
# from the repository's root.

# The registry's source of the smoltcp 0.14.x in Cargo.lock (fetched if cargo has not yet).
smoltcp_source() {
  local version registry src
  version=$(grep -A1 '^name = "smoltcp"$' Cargo.lock | sed -n 's/^version = "\(0\.14\.[0-9]*\)"$/\1/p' | head -n 1)
  registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
  src=$(ls -d "$registry"/*/smoltcp-"$version" 2> /dev/null | head -n 1 || true)
  if [ -z "$src" ]; then
    cargo fetch --quiet
    src=$(ls -d "$registry"/*/smoltcp-"$version" | head -n 1)
  fi
  echo "$src"
}

# smoltcp_patched DEST: DEST holds smoltcp's source with every patch of patches/ applied. A DEST
# that already holds exactly that is left alone, file times and all, so that cargo does not
# build it again.
smoltcp_patched() {
  local dest=$1 fresh p
  fresh=$(mktemp -d)
  cp -r "$(smoltcp_source)/." "$fresh"
  for p in patches/*.patch; do patch --quiet -p1 -d "$fresh" < "$p"; done
  if [ -d "$dest" ] && diff -rq "$fresh" "$dest" > /dev/null 2>&1; then
    rm -rf "$fresh"
  else
    rm -rf "$dest"
    mkdir -p "$(dirname "$dest")"
    mv "$fresh" "$dest"
  fi
}
