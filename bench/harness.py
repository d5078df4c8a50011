"""What every workload of the bench shares: servers, figures, interleaved rounds, a
PING-latency probe and an RSS sampler.

A figure is one JSON line: {"workload", "contender", "metric", "value", "unit", ...params}.
"""
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "recipes", "python"))

import redis  # noqa: E402
from conftest import (RedisServer, python_groupby_counts, recipe, unregister_all,  # noqa: E402,F401
                      upload, wait_until, wasm_groupby_counts)


def register_python(c, code):
    """Registers a Python recipe's triggers; returns how to take them away again."""
    assert c.execute_command("RG.PYEXECUTE", code) == "OK"
    return lambda: unregister_all(c)


def deploy_guest(c, name):
    """Uploads the guest `name` (its triggers start); returns how to delete it again."""
    upload(c, name)
    return lambda: c.execute_command("RG.WASMDELETE", name)


class Figures:
    """Collects figures, printing each as a JSON line the moment it is measured."""

    def __init__(self, out=None):
        self.all = []
        self.out = out

    def add(self, workload, contender, metric, value, unit, **params):
        fig = {"workload": workload, "contender": contender, "metric": metric,
               "value": round(value, 4) if isinstance(value, float) else value,
               "unit": unit, **params}
        self.all.append(fig)
        line = json.dumps(fig)
        print(line, flush=True)
        if self.out:
            self.out.write(line + "\n")
            self.out.flush()


def interleaved(contenders, rounds, run_one):
    """Runs every contender once per round, rotating who goes first, so a slow phase of a
    noisy machine hits all of them alike. Returns {name: [result of each round]}."""
    names = list(contenders)
    results = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            results[name].append(run_one(name))
    return results


def median_of(results, key):
    return statistics.median(r[key] for r in results)


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def _ping_loop(port, conn, interval):
    """In its own process (no GIL shared with the bench): PING every `interval` seconds
    between a start and a stop message, and send back the latencies. A PING held up for L
    seconds also stands for the PINGs that should have gone out meanwhile (L - interval,
    L - 2 interval, ...): without that, a server frozen for a second would show as one
    slow sample among thousands of fast ones."""
    client = redis.Redis(port=port)
    while conn.recv() == "start":
        latencies = []
        next_at = time.perf_counter()
        while not conn.poll():
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            sent = time.perf_counter()
            _ping_answered(client)
            took = time.perf_counter() - sent
            latencies.append(took)
            missed = took - interval
            while missed > 0:
                latencies.append(missed)
                missed -= interval
            next_at = max(next_at + interval, time.perf_counter())
        conn.recv()
        conn.send(latencies)


def _ping_answered(client):
    """PING until the server answers PONG: a server busy running a script over its time
    limit answers BUSY, and that time counts as latency too."""
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.ResponseError as e:
            if not str(e).startswith("BUSY"):
                raise


class Pinger:
    """Another client's PINGs, every millisecond, while a contender runs."""

    def __init__(self, port, interval=0.001):
        self.conn, child = multiprocessing.Pipe()
        self.proc = multiprocessing.Process(target=_ping_loop, args=(port, child, interval),
                                            daemon=True)
        self.proc.start()

    def __enter__(self):
        self.conn.send("start")
        return self

    def __exit__(self, *exc):
        self.conn.send("stop")
        lat = sorted(self.conn.recv())
        self.p50_ms = percentile(lat, 50) * 1000
        self.p99_ms = percentile(lat, 99) * 1000
        self.max_ms = (lat[-1] if lat else 0.0) * 1000

    def close(self):
        self.conn.send("quit")
        self.proc.join(timeout=5)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """redis-server's resident set, sampled every 10 ms while a contender runs: the value
    before, the peak during and the value after."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.before_mb = rss_mb(self.pid)
        self.peak_mb = self.before_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.after_mb = rss_mb(self.pid)
        self.peak_mb = max(self.peak_mb, self.after_mb)


# Redis 7.4.1 and RedisGears 2.0.20 (JS on V8), installed by scripts/redis74.sh (make bench
# does it). When present, every workload runs on that binary, ours and RedisGears 2 alike.
REDIS74 = os.environ.get("BENCH_REDIS74", os.path.join(ROOT, "target", "servers", "redis-7.4"))
GEARS2_JS = os.path.join(ROOT, "bench", "gears2")


def redis74():
    """The 7.4.1 redis-server (a wrapper that finds its OpenSSL 1.1), if it is installed."""
    path = os.path.join(REDIS74, "redis-server")
    return path if os.access(path, os.X_OK) else None


# The native floor of recipe 2 (bench/floor/floor.c, built by make bench and make test).
FLOOR = os.environ.get("BENCH_FLOOR", os.path.join(ROOT, "target", "bench", "floor.so"))


def start_server(binary=None):
    """A redis-server with the module (and the floor module, when built): `binary`, else
    Debian's."""
    extra = ["--loadmodule", FLOOR] if os.path.exists(FLOOR) else []
    if not extra:
        print(f"native floor: skipped, {FLOOR} is not built (make bench builds it)", flush=True)
    return RedisServer(binary=binary, extra_args=extra).start()


class Gears2:
    """A peer server: the same 7.4.1 binary with RedisGears 2 (JS on V8) loaded instead
    of this module, running the recipes of bench/gears2/*.js."""

    def __init__(self):
        self.server = RedisServer(load_module=False, binary=redis74(), extra_args=[
            "--loadmodule", os.path.join(REDIS74, "redisgears.so"),
            "v8-plugin-path", os.path.join(REDIS74, "libredisgears_v8_plugin.so")]).start()
        self.port = self.server.port
        self.pid = self.server.proc.pid
        # A RedisGears 2 function that holds the server longer than lock-redis-timeout
        # (500 ms) is killed; Lua's scripts run on past lua-time-limit. Recipe 2 over a
        # million keys takes seconds on both: let it finish, as Lua's does.
        c = self.client()
        c.config_set("redisgears_2.db-loading-lock-redis-timeout", 3_600_000)
        c.config_set("redisgears_2.lock-redis-timeout", 3_600_000)

    def client(self):
        return self.server.client()

    def load(self, name):
        """Loads bench/gears2/<name>.js (its triggers start); returns how to delete it."""
        with open(os.path.join(GEARS2_JS, name + ".js")) as f:
            code = f.read()
        library = code.split("name=", 1)[1].split()[0]
        c = self.client()
        assert c.execute_command("TFUNCTION", "LOAD", "REPLACE", code) == "OK"
        return lambda: c.execute_command("TFUNCTION", "DELETE", library)

    def stop(self):
        self.server.stop()


def start_gears2():
    """The RedisGears 2 peer, or None (with a line saying why) where it is not installed."""
    if redis74() is None:
        print(f"RedisGears 2: skipped, not installed in {REDIS74} "
              "(make bench installs it: scripts/redis74.sh)", flush=True)
        return None
    return Gears2()


def machine(binary="redis-server"):
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    redis_version = subprocess.run([binary, "--version"], capture_output=True,
                                   text=True).stdout.split()
    version = next((w[2:] for w in redis_version if w.startswith("v=")), "?")
    with open("/proc/meminfo") as f:
        mem_gb = int(f.readline().split()[1]) / 1024 / 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb),
            "redis": version, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}
