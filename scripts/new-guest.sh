#!/bin/sh
# make new-guest NAME=<name> [DIR=<parent directory>]: a guest crate from templates/guest,
# outside this workspace (its own [workspace]), depending on this checkout's guest-sdk by
# path, with this repository's Cargo.lock (the versions the module is tested with).
set -eu
name=${1:-}
parent=${2:-..}
case "$name" in
    '' | *[!a-z0-9_-]* | [-_]*)
        echo "usage: make new-guest NAME=<name> [DIR=<parent directory, default ..>]" >&2
        echo "NAME: lower-case letters, digits, - and _, starting with a letter or digit" >&2
        exit 1 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$parent/$name"
if [ -e "$dir" ]; then
    echo "$dir exists already" >&2
    exit 1
fi
crate=$(printf '%s' "$name" | tr - _)
mkdir -p "$dir/src"
sed -e "s|@NAME@|$name|g" -e "s|@SDK@|$root/guest-sdk|g" \
    "$root/templates/guest/Cargo.toml.in" > "$dir/Cargo.toml"
sed -e "s|@NAME@|$name|g" -e "s|@CRATE@|$crate|g" \
    "$root/templates/guest/src/lib.rs" > "$dir/src/lib.rs"
cp "$root/Cargo.lock" "$dir/Cargo.lock"
printf '/target\n' > "$dir/.gitignore"
dir=$(cd "$dir" && pwd)
echo "created $dir"
echo "  cd $dir && cargo test                                  # tests without Redis"
echo "  cargo build --release --target wasm32-wasip2            # target/wasm32-wasip2/release/$crate.wasm"
