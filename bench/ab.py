"""Before/after of a change on a noisy machine: two builds side by side, runs alternating.

    python3 bench/ab.py --a /tmp/before --b target/release [--a-guests DIR] [--b-guests DIR]
                        [--movies 100000] [--runs 15] [--jobs wasm,python,entry]

Each build directory holds a `libredisgears_rs.so` (and its `gears-python`, as
target/release does); the guests directories hold the `.wasm` files each build runs (a
change to the guest contract needs its own). Both servers (Redis 7.4.1 when installed) are
up at once with the same movies, and every run goes to one server then the other, so a
slow phase of the machine hits both. The figure is the server's CPU time (utime + stime)
per run, not the wall clock: on these shared 2-core machines another tenant's load
moves wall times by 30% and more. Medians and minimums are printed with the ratio b/a;
the Python recipe on the same servers is a control for changes that only touch guests.

Jobs: `wasm` (recipe 2 as RG.WASMRUN genres count), `python` (recipe 2 by RG.PYEXECUTE),
`entry` (the kitchen guest's map_count: records entering a guest and back), `count`
(the kitchen guest's count: the reader alone), `pyasync` / `wasmasync` (recipe 1 as
printed, an async trigger, in Python / as the all_keys guest: 20,000 SETs of new keys,
the CPU from the first SET until every event's execution has ended).
"""
import argparse
import os
import statistics

from harness import deploy_guest, redis74, register_python  # puts tests/ and recipes/python/ on the path

import conftest  # noqa: E402
from load_movies import load  # noqa: E402

RECIPE = os.path.join(conftest.ROOT, "recipes", "python", "count_genres.py")
ALL_KEYS = os.path.join(conftest.ROOT, "recipes", "python", "all_keys.py")
ASYNC_SETS = 20_000

JOBS = {
    "wasm": ("RG.WASMRUN", "genres", "count", "movie:*"),
    "entry": ("RG.WASMRUN", "kitchen", "map_count"),
    "count": ("RG.WASMRUN", "kitchen", "count"),
}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(build, guests, movies):
    conftest.MODULE = os.path.abspath(os.path.join(build, "libredisgears_rs.so"))
    conftest.GUESTS = os.path.abspath(guests)
    server = conftest.RedisServer(binary=redis74()).start()
    c = server.client()
    load(c, movies)
    deploy_guest(c, "genres")
    deploy_guest(c, "kitchen")
    return server, c


def settled(c):
    """Whether every execution the registrations started has ended."""
    for d in conftest.dump_regs(c).values():
        data = d["data"]
        ended = data["numSuccess"] + data["numFailures"] + data["numAborted"]
        if ended < data["numTriggered"]:
            return False
    return True


def run_async(server, c, job, serial=[0]):
    """CPU of ASYNC_SETS SETs of new keys and of the async trigger's every execution."""
    if job == "pyasync":
        with open(ALL_KEYS) as f:
            done = register_python(c, f.read())
    else:
        done = deploy_guest(c, "all_keys")
    serial[0] += 1
    pipe = c.pipeline(transaction=False)
    try:
        before = cpu_seconds(server.proc.pid)
        for i in range(ASYNC_SETS):
            pipe.set(f"ab:{serial[0]}:{i}", i)
            if i % 500 == 499:
                pipe.execute()
        pipe.execute()
        conftest.wait_until(lambda: settled(c), timeout=120, interval=0.05, what="drained")
        return cpu_seconds(server.proc.pid) - before
    finally:
        done()
        c.delete("all_keys")


def run_once(server, c, job, code):
    if job in ("pyasync", "wasmasync"):
        return run_async(server, c, job)
    command = ("RG.PYEXECUTE", code) if job == "python" else JOBS[job]
    before = cpu_seconds(server.proc.pid)
    reply = c.execute_command(*command)
    took = cpu_seconds(server.proc.pid) - before
    assert not reply[1], f"{job} failed: {reply[1][:3]}"
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="the build before")
    ap.add_argument("--b", required=True, help="the build after")
    ap.add_argument("--a-guests", default=conftest.GUESTS)
    ap.add_argument("--b-guests", default=conftest.GUESTS)
    ap.add_argument("--movies", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", default="wasm,python,entry")
    args = ap.parse_args()
    jobs = args.jobs.split(",")
    unknown = [j for j in jobs if j not in ("python", "pyasync", "wasmasync") and j not in JOBS]
    if unknown:
        ap.error(f"unknown jobs {unknown}")
    with open(RECIPE) as f:
        code = f.read()
    sides = {"a": start(args.a, args.a_guests, args.movies),
             "b": start(args.b, args.b_guests, args.movies)}
    times = {side: {job: [] for job in jobs} for side in sides}
    try:
        for _ in range(args.runs):
            for side, (server, c) in sides.items():
                for job in jobs:
                    times[side][job].append(run_once(server, c, job, code))
    finally:
        for server, _ in sides.values():
            server.stop()
    print(f"server CPU seconds per run, {args.runs} runs each, {args.movies} movies")
    print(f"{'job':8} {'a median':>9} {'b median':>9} {'b/a':>6} {'a min':>7} {'b min':>7} {'b/a':>6}")
    for job in jobs:
        ma, mb = (statistics.median(times[s][job]) for s in "ab")
        na, nb = (min(times[s][job]) for s in "ab")
        print(f"{job:8} {ma:9.3f} {mb:9.3f} {mb / ma:6.2f} {na:7.3f} {nb:7.3f} {nb / na:6.2f}")


if __name__ == "__main__":
    main()
