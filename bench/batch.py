"""Workload 1, batch analytics, and workload 5, memory: recipe 2 (count movies by genre)
over N generated movie hashes, by every contender a Redis user has.

- python: the recipe of recipes/python/count_genres.py through RG.PYEXECUTE
- wasm: the guest recipes/wasm/genres through RG.WASMRUN
- lua: one EVAL doing SCAN + HGET + split + count
- client: redis-py doing SCAN + pipelined HGET + collections.Counter
- lua_floor: one EVAL that only SCANs and HGETs (what reading the data costs in Lua)
- native_floor: FLOOR.GENRES of bench/floor/floor.c, the same work in C straight on the
  module API (RedisModule_Scan + HashGet on the main thread): this machine's limit
- gears2_js: RedisGears 2's JS (bench/gears2/count_genres.js), one TFCALL doing SCAN +
  HGET + split + count, on a peer server (same binary, same data) where it is installed

Each run is checked against the counts the loader wrote. While each runs, another
client's PING latency and redis-server's RSS are sampled.
"""
import time
from collections import Counter

from harness import (Pinger, RssSampler, deploy_guest, interleaved, median_of,
                     python_groupby_counts, recipe, wasm_groupby_counts)
from load_movies import load

LUA_SCAN = """
local cursor = '0'
repeat
  local res = redis.call('SCAN', cursor, 'MATCH', 'movie:*', 'COUNT', 1000)
  cursor = res[1]
  for _, key in ipairs(res[2]) do
    local genres = redis.call('HGET', key, 'genres')
    %s
  end
until cursor == '0'
"""

LUA = ("local counts = {}\n"
       + LUA_SCAN % """if genres then
      for g in string.gmatch(genres, '[^,]+') do counts[g] = (counts[g] or 0) + 1 end
    end"""
       + """local out = {}
for g, n in pairs(counts) do table.insert(out, g); table.insert(out, n) end
return out
""")

LUA_FLOOR = "local n = 0\n" + LUA_SCAN % "if genres then n = n + 1 end" + "return n\n"


def flat_counts(flat):
    return Counter(dict(zip(flat[0::2], (int(v) for v in flat[1::2]))))


def ok(reply):
    """The results of an RG.PYEXECUTE / RG.WASMRUN reply that has no errors."""
    results, errors = reply
    assert errors == [], errors
    return results


def client_counts(c):
    counts = Counter()
    cursor = 0
    while True:
        cursor, keys = c.scan(cursor, match="movie:*", count=1000)
        pipe = c.pipeline(transaction=False)
        for k in keys:
            pipe.hget(k, "genres")
        for genres in pipe.execute():
            if genres is not None:
                counts.update(genres.split(","))
        if cursor == 0:
            return counts


def contenders(c, code):
    return {
        "lua": lambda: flat_counts(c.eval(LUA, 0)),
        "python": lambda: python_groupby_counts(ok(c.execute_command("RG.PYEXECUTE", code))),
        "wasm": lambda: wasm_groupby_counts(
            ok(c.execute_command("RG.WASMRUN", "genres", "count", "movie:*"))),
        "client": lambda: client_counts(c),
        "lua_floor": lambda: c.eval(LUA_FLOOR, 0),
    }


def run(figures, server, peer, count, rounds):
    c = server.client()
    c.flushall()
    t0 = time.perf_counter()
    expected = Counter(load(c, count))
    figures.add("batch", "loader", "load_seconds", time.perf_counter() - t0, "s", keys=count)
    delete_guest = deploy_guest(c, "genres")
    jobs = contenders(c, recipe("count_genres.py"))
    if "FLOOR.GENRES" in {name.upper() for name in c.command_list()}:
        jobs["native_floor"] = lambda: flat_counts(c.execute_command("FLOOR.GENRES"))
    pinger = Pinger(server.port)
    pid = {name: server.proc.pid for name in jobs}
    pingers = {name: pinger for name in jobs}
    if peer is not None:
        pc = peer.client()
        assert Counter(load(pc, count)) == expected
        peer.load("count_genres")
        jobs["gears2_js"] = lambda: flat_counts(
            pc.execute_command("TFCALL", "bench_genres.count_genres", 0))
        pid["gears2_js"] = peer.pid
        pingers["gears2_js"] = Pinger(peer.port)

    def run_one(name):
        with RssSampler(pid[name]) as rss, pingers[name] as ping:
            t = time.perf_counter()
            got = jobs[name]()
            took = time.perf_counter() - t
        if name == "lua_floor":
            assert got == count, (name, got)
        else:
            assert got == expected, (name, got)
        return {"seconds": took, "p50_ms": ping.p50_ms, "p99_ms": ping.p99_ms,
                "max_ms": ping.max_ms, "rss_before_mb": rss.before_mb,
                "rss_peak_mb": rss.peak_mb, "rss_after_mb": rss.after_mb}

    try:
        jobs["wasm"]()  # compile/instantiate once before timing, as a deployed guest is
        results = interleaved(jobs, rounds, run_one)
    finally:
        for p in set(pingers.values()):
            p.close()
        delete_guest()
    lua = median_of(results["lua"], "seconds")
    floor = median_of(results["native_floor"], "seconds") if "native_floor" in results else None
    for name, rs in results.items():
        secs = median_of(rs, "seconds")
        figures.add("batch", name, "seconds", secs, "s", keys=count, rounds=rounds)
        figures.add("batch", name, "ratio_to_lua", secs / lua, "x", keys=count)
        if floor:
            figures.add("batch", name, "ratio_to_floor", secs / floor, "x", keys=count)
        figures.add("batch", name, "us_per_key", secs / count * 1e6, "us", keys=count)
        for metric in ("p50_ms", "p99_ms", "max_ms"):
            figures.add("batch", name, "ping_" + metric, median_of(rs, metric), "ms",
                        keys=count)
        for stage in ("before", "peak", "after"):
            figures.add("memory", name, f"rss_{stage}_mb",
                        median_of(rs, f"rss_{stage}_mb"), "MB", keys=count)
    c.flushall()
