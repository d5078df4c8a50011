#!/usr/bin/env bash
# A local Redis Cluster of 3 masters with the module loaded (make cluster, make cluster-stop).
#
#   scripts/cluster.sh start <module.so>   start the nodes, create the cluster if it is new,
#                                          wait until it is ok
#   scripts/cluster.sh stop                shut the nodes down, remove target/cluster
#
# Nodes listen on 127.0.0.1:30001-30003 (cluster bus 40001-40003), daemonized, with their
# nodes.conf, log and pidfile under target/cluster/<port>/. Nothing is saved: the data
# lives as long as the nodes do.
set -euo pipefail
cd "$(dirname "$0")/.."

PORTS=(30001 30002 30003)
DIR=$PWD/target/cluster
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}

cli() { "$REDIS_CLI" -h 127.0.0.1 -p "$@"; }

# Whether the server on port $1 is the node this script started there (its pidfile's pid):
# another server on that port is neither reused nor shut down.
ours() {
    local pidfile=$DIR/$1/redis.pid pid
    [ -f "$pidfile" ] || return 1
    pid=$(cli "$1" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
    [ -n "$pid" ] && [ "$pid" = "$(cat "$pidfile")" ]
}

# Poll (every 0.1 s, for at most $1 s) until the command after it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.1
    done
}

# CLUSTER INFO field $2 of node $1 (captured whole: grep -q in a pipe could cut redis-cli
# short, and pipefail would count that as a failure).
cluster_info() {
    local info
    info=$(cli "$1" cluster info 2>/dev/null | tr -d '\r') || return 1
    sed -n "s/^$2://p" <<<"$info"
}

cluster_ok() { [ "$(cluster_info "$1" cluster_state)" = ok ]; }

# Whether process $1 has exited. A zombie has: only its parent (init, for a daemon) has yet
# to reap it.
gone() {
    local state
    state=$(ps -o stat= -p "$1") || return 0
    [[ $state == Z* ]]
}

start() {
    local module=${1:?usage: $0 start <module.so>} p
    [ -f "$module" ] || { echo "no module at $module (make build)" >&2; exit 1; }
    # A server resolves a relative module path from its --dir.
    module=$(realpath "$module")
    # Every port first, so that a taken one leaves no node started.
    for p in "${PORTS[@]}"; do
        if ! ours "$p" && cli "$p" ping >/dev/null 2>&1; then
            echo "port $p is taken by a server this script did not start" >&2
            exit 1
        fi
    done
    for p in "${PORTS[@]}"; do
        if ours "$p"; then
            echo "node $p already running"
            continue
        fi
        mkdir -p "$DIR/$p"
        # An existing nodes.conf (nodes stopped without cluster-stop) makes the node rejoin.
        "$REDIS_SERVER" --port "$p" --bind 127.0.0.1 --daemonize yes \
            --dir "$DIR/$p" --pidfile "$DIR/$p/redis.pid" --logfile "$DIR/$p/redis.log" \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --appendonly no --save "" \
            --loadmodule "$module"
    done
    for p in "${PORTS[@]}"; do
        # The daemon forks before it loads the module and listens.
        wait_for 30 "node $p to answer (log: $DIR/$p/redis.log)" ours "$p"
    done
    # No slot assigned: the cluster was never created (restarted nodes rejoin by nodes.conf).
    if [ "$(cluster_info "${PORTS[0]}" cluster_slots_assigned)" = 0 ]; then
        local nodes=()
        for p in "${PORTS[@]}"; do nodes+=("127.0.0.1:$p"); done
        if ! "$REDIS_CLI" --cluster create "${nodes[@]}" --cluster-yes >"$DIR/create.log" 2>&1; then
            cat "$DIR/create.log" >&2
            exit 1
        fi
    fi
    for p in "${PORTS[@]}"; do
        wait_for 30 "node $p to report cluster_state:ok" cluster_ok "$p"
    done
    echo "cluster ok: 3 masters on 127.0.0.1:${PORTS[0]}-${PORTS[-1]}, data in target/cluster"
    echo "connect:    redis-cli -c -p ${PORTS[0]}"
    echo "stop:       make cluster-stop"
}

stop() {
    local p pid
    for p in "${PORTS[@]}"; do
        ours "$p" || continue
        pid=$(cat "$DIR/$p/redis.pid")
        cli "$p" shutdown nosave >/dev/null 2>&1 || true
        wait_for 10 "node $p (pid $pid) to exit" gone "$pid"
        echo "node $p stopped"
    done
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop ;;
    *) echo "usage: $0 start <module.so> | stop" >&2; exit 2 ;;
esac
