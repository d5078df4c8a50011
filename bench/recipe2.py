"""Recipe 2 (count movies by genre), Python recipe and Wasm guest, against one Lua EVAL
doing the same work, in one run.

Starts its own redis-server with the module on a free port, loads N generated movies and
times the contenders interleaved, printing one JSON line per figure and the ratios.

    python3 bench/recipe2.py [--count 200000] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "recipes", "python"))

from conftest import RedisServer, guest_bytes  # noqa: E402
from load_movies import load  # noqa: E402

LUA = """
local counts = {}
local cursor = '0'
repeat
  local res = redis.call('SCAN', cursor, 'MATCH', 'movie:*', 'COUNT', 1000)
  cursor = res[1]
  for _, key in ipairs(res[2]) do
    local genres = redis.call('HGET', key, 'genres')
    if genres then
      for g in string.gmatch(genres, '[^,]+') do counts[g] = (counts[g] or 0) + 1 end
    end
  end
until cursor == '0'
local out = {}
for g, n in pairs(counts) do table.insert(out, g); table.insert(out, n) end
return out
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    server = RedisServer().start()
    try:
        r = server.client()
        load(r, a.count)
        code = open(os.path.join(ROOT, "recipes", "python", "count_genres.py")).read()
        r.execute_command("RG.WASMUPLOAD", "genres", guest_bytes("genres"))
        times = {"python": [], "wasm": [], "lua": []}
        for _ in range(a.rounds):
            t = time.perf_counter()
            r.execute_command("RG.WASMRUN", "genres", "count", "movie:*")
            times["wasm"].append(time.perf_counter() - t)
            t = time.perf_counter()
            r.execute_command("RG.PYEXECUTE", code)
            times["python"].append(time.perf_counter() - t)
            t = time.perf_counter()
            r.eval(LUA, 0)
            times["lua"].append(time.perf_counter() - t)
        lua = statistics.median(times["lua"])
        for name, ts in times.items():
            med = statistics.median(ts)
            print(json.dumps({"workload": "recipe2", "contender": name, "keys": a.count,
                              "seconds": round(med, 4), "ratio_to_lua": round(med / lua, 3)}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
