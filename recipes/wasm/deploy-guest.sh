#!/bin/sh
# Uploads a guest with REPLACE and checks that Redis now runs exactly this artifact
# (RG.WASMLIST's hash = the file's sha256). The sample workflow deploy-guest.yml runs it;
# it works from any repository and from a shell.
#
#   GUEST_NAME   the name the guest gets in Redis (RG.WASMUPLOAD <name>)   (required)
#   ARTIFACT     the .wasm file                                            (required)
#   REDIS_HOST   default 127.0.0.1;  REDIS_PORT   default 6379
#   REDIS_USER   an ACL user allowed RG.WASMUPLOAD and RG.WASMLIST (docs/roles.md:
#                gears-deployer); REDISCLI_AUTH its password (redis-cli reads it)
#   REDIS_TLS    1 to connect with TLS; REDIS_CACERT the CA that signed the server's
#                certificate (else the system's)
set -eu
: "${GUEST_NAME:?GUEST_NAME is the guest's name in Redis}"
: "${ARTIFACT:?ARTIFACT is the .wasm file}"
[ -f "$ARTIFACT" ] || { echo "no such file: $ARTIFACT" >&2; exit 1; }

set -- -h "${REDIS_HOST:-127.0.0.1}" -p "${REDIS_PORT:-6379}"
if [ -n "${REDIS_USER:-}" ]; then set -- "$@" --user "$REDIS_USER"; fi
if [ "${REDIS_TLS:-0}" = 1 ]; then
    set -- "$@" --tls
    if [ -n "${REDIS_CACERT:-}" ]; then set -- "$@" --cacert "$REDIS_CACERT"; fi
fi

# redis-cli prints an error reply (ERR..., NOAUTH..., NOPERM...) and still exits 0, and
# after a failed AUTH it goes on as the default user: both fail the deploy here.
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
# Log in first (with RG.WASMLIST, which a deployer may run): nothing is uploaded as anyone
# else.
redis-cli "$@" RG.WASMLIST >/dev/null 2>"$errors" || true
if grep -q "AUTH failed" "$errors"; then
    cat "$errors" >&2
    exit 1
fi
reply=$(redis-cli "$@" -x RG.WASMUPLOAD "$GUEST_NAME" REPLACE < "$ARTIFACT" 2>"$errors")
cat "$errors" >&2
echo "RG.WASMUPLOAD $GUEST_NAME: $reply"
if grep -q "AUTH failed" "$errors" || [ "$reply" != OK ]; then exit 1; fi

want=$(sha256sum "$ARTIFACT" | cut -d' ' -f1)
# RG.WASMLIST, one value per line (redis-cli's raw output): each guest starts with name,
# <name>, size, <bytes>, hash, <sha256>.
if ! redis-cli "$@" --raw RG.WASMLIST 2>/dev/null | awk -v name="$GUEST_NAME" -v want="$want" '
    { line[NR] = $0 }
    END {
        for (i = 1; i + 5 <= NR; i++)
            if (line[i] == "name" && line[i + 1] == name && line[i + 2] == "size" &&
                line[i + 4] == "hash" && line[i + 5] == want) exit 0
        exit 1
    }'; then
    echo "RG.WASMLIST does not show $GUEST_NAME with the artifact's sha256 $want" >&2
    exit 1
fi
echo "verified: $GUEST_NAME runs $ARTIFACT (sha256 $want)"
