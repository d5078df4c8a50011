"""Where a record's time goes: the per-record cost budget of bench/README.md.

    python3 bench/budget.py [--movies 200000] [--set-requests 100000]

For recipe 2 (Python and Wasm, over N movies) and recipe 1 as a sync trigger (Python and
Wasm, under a redis-benchmark SET load), `perf record --call-graph dwarf` samples
redis-server while the workload runs. Each sample goes to the part of the work its
innermost recognised frame belongs to (BUCKETS, in that order of precedence), and the
server's CPU time over the run (utime + stime) is shared out by the samples: microseconds
of CPU per record (a movie, or a SET and its event) for each part.

Needs `perf` with permission to profile the server (root, or perf_event_paranoid <= 1);
without it, one line says so and nothing is measured. A profile's frames are symbols of
Redis, of this module and of libpython: Debian's redis-server has no frame pointers, so
DWARF unwinding is used, and the guest's JIT code has no symbols (it is "guest code" by
the wasmtime frame that called it).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

from harness import deploy_guest, recipe, start_server
from load_movies import load

# (part, pattern of a frame): the innermost frame that matches names the sample's part.
BUCKETS = [
    ("Redis runs commands (the client's, and the recipe's calls)",
     r"^(call|lookupKey\w*|dbAdd|setTypeAdd|hashType\w*)$"),
    ("RedisModule_Call overhead", r"^(RM_Call|moduleCreateArgvFromUserFormat|"
                                  r"moduleReleaseTempClient|moduleCreateTempClient)$|call_ext|"
                                  r"redis::call::"),
    ("key API reads (fast path)", r"redis::fast::"),
    ("reader (SCAN, key values)", r"readers::|RM_Scan|scanGenericCommand|dictScan"),
    ("record encoding (MessagePack, Python objects)",
     r"engine::codec::|python::convert::|wasm::convert|from_redis_bytes"),
    ("host call crossing (execute)", r"host_api::|redis::door::|HostState::run_command|"
                                     r"gears_module::__pyfunction_execute|HostFn::"),
    ("native steps", r"engine::native::"),
    ("guest code (Wasm)", r"traphandlers::catch_traps|Func::call_raw|wasmtime::"),
    ("Python interpreter", r"^_?Py|^PyObject_|_PyEval|^builtin_|^(dict|list|unicode)_"),
    ("engine: runs, executions, registry", r"redisgears_rs::"),
]


def perf_ok():
    if shutil.which("perf") is None:
        return "perf is not installed"
    probe = subprocess.run(["perf", "record", "-o", os.devnull, "--", "true"],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return "perf cannot record here: " + (lines[-1] if lines else "it failed")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(pid, work):
    """Runs work() while perf samples `pid`; returns (samples' stacks, CPU seconds)."""
    data = tempfile.mktemp(prefix="gears-budget-", suffix=".data")
    perf = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,16384",
                             "-o", data, "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # perf attaches
    cpu0 = cpu_seconds(pid)
    work()
    cpu = cpu_seconds(pid) - cpu0
    perf.send_signal(2)
    perf.wait()
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"],
                         capture_output=True, text=True).stdout
    os.unlink(data)
    stacks, cur = [], []
    for line in out.splitlines():
        if not line.strip():
            if cur:
                stacks.append(cur)
            cur = []
            continue
        parts = line.strip().split(None, 1)
        sym = parts[1] if len(parts) > 1 else "[unknown]"
        cur.append(re.sub(r"\+0x[0-9a-f]+$", "", sym))
    if cur:
        stacks.append(cur)
    return stacks, cpu


DETAIL = Counter()  # (part, the frame that decided it) -> samples, for --detail


def share(stacks):
    """Fraction of the samples per part (the innermost frame that matches decides)."""
    compiled = [(name, re.compile(p)) for name, p in BUCKETS]
    counts = Counter()
    DETAIL.clear()
    for stack in stacks:  # innermost frame first
        part = "Redis networking, event loop, kernel, other"
        if all(f == "[unknown]" for f in stack):
            part = "unsymbolised (the guest's JIT code, Redis's static functions)"
        for frame in stack:
            hit = next((name for name, p in compiled if p.search(frame)), None)
            if hit:
                part = hit
                DETAIL[(part, frame[:100])] += 1
                break
        counts[part] += 1
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.items()}


def report(title, records, stacks, cpu, detail=False):
    parts = share(stacks)
    per = cpu / records * 1e6
    print(f"\n{title}: {per:.2f} us of server CPU per record ({len(stacks)} samples)")
    for name, frac in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {frac * per:7.3f} us  {frac * 100:5.1f}%  {name}")
        if detail:
            frames = sorted(((n, f) for (p, f), n in DETAIL.items() if p == name), reverse=True)
            for n, frame in frames[:6]:
                print(f"              {n / len(stacks) * 100:5.1f}%  {frame}")


def batch(server, movies, detail):
    c = server.client()
    c.flushall()
    load(c, movies)
    deploy_guest(c, "genres")
    code = recipe("count_genres.py")
    jobs = {
        "recipe 2, Python": lambda: c.execute_command("RG.PYEXECUTE", code),
        "recipe 2, Wasm": lambda: c.execute_command("RG.WASMRUN", "genres", "count", "movie:*"),
    }
    for name, job in jobs.items():
        job()  # warm
        stacks, cpu = profile(server.proc.pid, job)
        report(name, movies, stacks, cpu, detail)


def sync_triggers(server, requests, detail):
    import triggers as t
    c = server.client()
    for name in ("python_sync", "wasm_sync"):
        c.flushall()
        unregister = t.register(c, name)
        try:
            stacks, cpu = profile(server.proc.pid,
                                  lambda: t.redis_benchmark(server.port, requests, 50))
        finally:
            unregister()
        report(f"recipe 1 as a sync trigger, {name.split('_')[0]} (per SET + event)",
               requests, stacks, cpu, detail)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--movies", type=int, default=200_000)
    ap.add_argument("--set-requests", type=int, default=100_000)
    ap.add_argument("--detail", action="store_true",
                    help="under each part, the frames that decided its samples")
    a = ap.parse_args()
    why = perf_ok()
    if why:
        print(f"budget: skipped, {why}")
        return 0
    server = start_server()
    try:
        batch(server, a.movies, a.detail)
        sync_triggers(server, a.set_requests, a.detail)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
