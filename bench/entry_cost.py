"""Entry cost: nanoseconds per record of entering a language step with a batch.

Over N keys, a job `KeysOnlyReader -> map(identity) -> count()` is timed against the same
job without the map, at BatchSize 1, 64 and 1024, for a Python step (RG.PYEXECUTE) and a
Wasm guest step (RG.WASMRUN of tests/guests/kitchen). The difference divided by N is what
a record costs to enter the step and come back: the call into the runtime (once per
batch) plus converting the record both ways. Contenders run interleaved; each figure is
the median of --rounds.

    python3 bench/entry_cost.py [--count 100000] [--rounds 5]
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from conftest import RedisServer, guest_bytes  # noqa: E402

PY_BASE = "GB('KeysOnlyReader').count().run('k:*', convertToStr=False)"
PY_STEP = "GB('KeysOnlyReader').map(lambda x: x).count().run('k:*', convertToStr=False)"

CONTENDERS = {
    "python": (("RG.PYEXECUTE", PY_BASE), ("RG.PYEXECUTE", PY_STEP)),
    "wasm": (("RG.WASMRUN", "kitchen", "count", "k:*"),
             ("RG.WASMRUN", "kitchen", "map_count", "k:*")),
}


def timed(c, cmd, n):
    t0 = time.perf_counter()
    reply = c.execute_command(*cmd)
    took = time.perf_counter() - t0
    assert reply[1] == [] and int(reply[0][0]) == n, reply
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", default="1,64,1024")
    args = ap.parse_args()
    s = RedisServer().start()
    try:
        c = s.client()
        c.execute_command("RG.WASMUPLOAD", "kitchen", guest_bytes("kitchen"))
        pipe = c.pipeline(transaction=False)
        for i in range(args.count):
            pipe.set(f"k:{i}", i)
            if i % 10000 == 9999:
                pipe.execute()
        pipe.execute()
        figures = []
        for batch in [int(b) for b in args.batches.split(",")]:
            c.execute_command("RG.CONFIGSET", "BatchSize", batch)
            times = {(name, kind): [] for name in CONTENDERS for kind in ("base", "step")}
            for _ in range(args.rounds):
                for name, (base, step) in CONTENDERS.items():
                    times[(name, "base")].append(timed(c, base, args.count))
                    times[(name, "step")].append(timed(c, step, args.count))
            for name in CONTENDERS:
                base = statistics.median(times[(name, "base")])
                step = statistics.median(times[(name, "step")])
                ns = max(step - base, 0.0) / args.count * 1e9
                fig = {"workload": "entry_cost", "contender": name, "batch": batch,
                       "records": args.count, "ns_per_record": round(ns, 1),
                       "job_s": round(step, 4), "base_s": round(base, 4)}
                figures.append(fig)
                print(json.dumps(fig), flush=True)
        print()
        print("%-8s %8s %14s" % ("runtime", "batch", "ns/record"))
        for f in figures:
            print("%-8s %8d %14.1f" % (f["contender"], f["batch"], f["ns_per_record"]))
    finally:
        s.stop()


if __name__ == "__main__":
    main()
