"""Workload 2, keyspace triggers: redis-benchmark SET load (50 clients, unpipelined,
random keys) with recipe 1 (keep the set all_keys of every key) registered, against the
same load with no registration.

- none: no registration
- python_sync / python_async: recipes/python/all_keys.py with mode='sync' / as printed
- wasm_sync / wasm_async: bench/guests/all_keys_sync / recipes/wasm/all_keys
- gears2_js: RedisGears 2's keyspace trigger (bench/gears2/all_keys.js, synchronous), on
  a peer server with the same binary, where it is installed

After each load the bench waits until all_keys is complete (async triggers drain a
backlog) and checks that it holds exactly the keys written.
"""
import csv
import io
import subprocess
import time

from harness import deploy_guest, interleaved, median_of, recipe, register_python, wait_until

CONTENDERS = ["none", "python_sync", "python_async", "wasm_sync", "wasm_async"]
WASM_GUESTS = {"wasm_sync": "all_keys_sync", "wasm_async": "all_keys"}


def python_source(mode):
    code = recipe("all_keys.py")
    if mode == "sync":
        assert "builder.register()" in code, code
        code = code.replace("builder.register()", "builder.register(mode='sync')")
    return code


def register(c, name):
    """Registers the contender's trigger; returns how to take it away again."""
    if name == "none":
        return lambda: None
    if name.startswith("python"):
        return register_python(c, python_source(name.split("_")[1]))
    return deploy_guest(c, WASM_GUESTS[name])


def redis_benchmark(port, requests, clients):
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
         "-n", str(requests), "-r", "1000000000", "--csv", "SET", "key:__rand_int__", "v"],
        capture_output=True, text=True, check=True).stdout
    row = list(csv.DictReader(io.StringIO(out)))[-1]
    return float(row["rps"]), float(row["p99_latency_ms"])


def all_keys_caught_up(c):
    return c.scard("all_keys") == c.dbsize() - 1


def check_all_keys(c):
    """all_keys holds exactly the keys written."""
    written = {k for k in c.scan_iter(count=10000) if k != "all_keys"}
    members = c.smembers("all_keys")
    assert members == written, (len(members), len(written))
    return True


def run(figures, server, peer, requests, rounds, clients=50):
    contenders = CONTENDERS + (["gears2_js"] if peer is not None else [])

    def run_one(name):
        on = peer if name == "gears2_js" else server
        c = on.client()
        c.flushall()
        unregister = peer.load("all_keys") if on is peer else register(c, name)
        try:
            rps, p99 = redis_benchmark(on.port, requests, clients)
            loaded = time.perf_counter()
            if name != "none":
                wait_until(lambda: all_keys_caught_up(c), timeout=120, interval=0.002,
                           what=f"all_keys to hold every key ({name})")
            drain = time.perf_counter() - loaded
            complete = name == "none" or check_all_keys(c)
        finally:
            unregister()
        return {"rps": rps, "p99_ms": p99, "drain_s": 0.0 if name == "none" else drain,
                "complete": bool(complete)}

    results = interleaved(contenders, rounds, run_one)
    base = median_of(results["none"], "rps")
    for name, rs in results.items():
        rps = median_of(rs, "rps")
        params = {"requests": requests, "clients": clients, "rounds": rounds}
        figures.add("triggers", name, "set_rps", rps, "req/s", **params)
        figures.add("triggers", name, "ratio_to_none", rps / base, "x", **params)
        figures.add("triggers", name, "set_p99_ms", median_of(rs, "p99_ms"), "ms", **params)
        if name != "none":
            figures.add("triggers", name, "drain_s", median_of(rs, "drain_s"), "s", **params)
            figures.add("triggers", name, "all_keys_complete",
                        all(r["complete"] for r in rs), "bool", **params)
    server.client().flushall()
