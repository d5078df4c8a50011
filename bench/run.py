"""The bench: every workload against its peers, one JSON line per figure, then a summary.

    python3 bench/run.py              # full sizes (make bench)
    python3 bench/run.py --quick      # small sizes, under two minutes (make bench-quick)
    python3 bench/run.py --only batch,streams --movies 200000

Each workload gets a fresh redis-server with the module on a free port; its contenders
run interleaved in rounds. Figures go to stdout and to --out (JSON lines).
"""
import argparse
import os
import sys
import time

import batch
import cluster
import entry_cost
import streams
import triggers
from harness import Figures, machine, redis74, start_gears2, start_server

HERE = os.path.dirname(os.path.abspath(__file__))

SIZES = {  # name: (full, quick)
    "movies": (1_000_000, 100_000),
    "set_requests": (200_000, 50_000),
    "messages": (100_000, 20_000),
    "entry_records": (100_000, 50_000),
    "cluster_movies": (200_000, 50_000),
    "rounds": (3, 2),
}

# f: figures, s: our server, p: the RedisGears 2 peer (or None), a: the arguments
WORKLOADS = {
    "batch": lambda f, s, p, a: batch.run(f, s, p, a.movies, a.rounds),
    "triggers": lambda f, s, p, a: triggers.run(f, s, p, a.set_requests, a.rounds),
    "streams": lambda f, s, p, a: streams.run(f, s, p, a.messages, a.rounds),
    "entry_cost": lambda f, s, p, a: entry_cost.run(f, s, a.entry_records, a.rounds + 1),
    "cluster": lambda f, s, p, a: cluster.run(f, s, a.cluster_movies, a.rounds),
}
# The workloads RedisGears 2 runs too (bench/gears2/*.js).
WITH_GEARS2 = {"batch", "triggers", "streams"}


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the small sizes")
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help="comma-separated workloads (%s)" % ",".join(WORKLOADS))
    ap.add_argument("--debian", action="store_true",
                    help="run on Debian's redis-server even where Redis 7.4.1 is installed "
                         "(and without RedisGears 2)")
    ap.add_argument("--out", help="JSON lines file (default bench/results/<full|quick>.jsonl)")
    for name in SIZES:
        ap.add_argument("--" + name.replace("_", "-"), type=int)
    a = ap.parse_args()
    for name, (full, quick) in SIZES.items():
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    unknown = set(a.only.split(",")) - set(WORKLOADS)
    if unknown:
        ap.error("unknown workload: " + ",".join(sorted(unknown)))
    a.out = a.out or os.path.join(HERE, "results", ("quick" if a.quick else "full") + ".jsonl")
    return a


def summary(figures):
    """The figures as one table per workload: a row per contender, a column per metric."""
    by_workload = {}
    for f in figures.all:
        if f["workload"] == "machine":
            continue
        rows = by_workload.setdefault(f["workload"], {})
        key = f["contender"] + (f" (batch {f['batch']})" if "batch" in f else "")
        rows.setdefault(key, {})[f"{f['metric']} [{f['unit']}]"] = f["value"]
    for workload, rows in by_workload.items():
        metrics = []
        for cols in rows.values():
            metrics += [m for m in cols if m not in metrics]
        width = max(len(k) for k in rows) + 2
        print(f"\n== {workload}")
        print("".ljust(width) + "".join(m.rjust(max(14, len(m) + 2)) for m in metrics))
        for key, cols in rows.items():
            cells = []
            for m in metrics:
                v = cols.get(m, "")
                text = f"{v:.3f}" if isinstance(v, float) else str(v)
                cells.append(text.rjust(max(14, len(m) + 2)))
            print(key.ljust(width) + "".join(cells))


def main():
    a = parse()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    command = "python3 bench/run.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    binary = None if a.debian else redis74()
    if binary is None and not a.debian:
        print("Redis 7.4.1 is not installed (make bench installs it): Debian's "
              "redis-server, RedisGears 2 skipped", flush=True)
    with open(a.out, "w") as out:
        figures = Figures(out)
        figures.add("machine", "this", "info", machine(binary or "redis-server"), "",
                    command=command.strip(), sizes={n: getattr(a, n) for n in SIZES})
        for name in a.only.split(","):
            server = start_server(binary)
            peer = start_gears2() if binary and name in WITH_GEARS2 else None
            try:
                WORKLOADS[name](figures, server, peer, a)
            finally:
                server.stop()
                if peer is not None:
                    peer.stop()
        figures.add("machine", "this", "bench_seconds", time.perf_counter() - started, "s")
    summary(figures)
    print(f"\nfigures: {a.out}")


if __name__ == "__main__":
    main()
