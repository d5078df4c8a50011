"""The bench keeps running: bench/run.py at tiny sizes prints every figure of every
workload, each run checked by the bench itself, and publish.py turns them into the
README's tables."""
import json
import os
import subprocess
import sys

from conftest import ROOT

BENCH = os.path.join(ROOT, "bench")

# make test installs Redis 7.4.1 with RedisGears 2 and builds the native floor, so the
# smoke run has every contender; run by hand without them, it has the rest.
GEARS2 = os.path.exists(os.path.join(ROOT, "target", "servers", "redis-7.4", "redis-server"))
FLOOR = os.path.exists(os.path.join(ROOT, "target", "bench", "floor.so"))
PEERS = {"gears2_js"} if GEARS2 else set()
BATCH_PEERS = PEERS | ({"native_floor"} if FLOOR else set())

EXPECTED = {
    "batch": {"lua", "python", "wasm", "client", "lua_floor"} | BATCH_PEERS,
    "memory": {"lua", "python", "wasm", "client", "lua_floor"} | BATCH_PEERS,
    "triggers": {"none", "python_sync", "python_async", "wasm_sync", "wasm_async"} | PEERS,
    "streams": {"python", "wasm", "worker"} | PEERS,
    "entry_cost": {"python", "wasm", "python_len", "wasm_view"},
    "cluster": {"python_1_shard", "python_3_masters", "wasm_1_shard", "wasm_3_masters",
                "repartition"},
}


def test_bench_prints_every_figure(tmp_path):
    out = tmp_path / "smoke.jsonl"
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "run.py"), "--quick", "--out", str(out),
         "--movies", "2000", "--set-requests", "2000", "--messages", "500",
         "--entry-records", "1000", "--cluster-movies", "2000", "--rounds", "1"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = [json.loads(line) for line in out.read_text().splitlines()]
    seen = {}
    for f in figures:
        seen.setdefault(f["workload"], set()).add(f["contender"])
    for workload, contenders in EXPECTED.items():
        assert seen.get(workload, set()) >= contenders, (workload, seen.get(workload))
    metrics = {(f["workload"], f["metric"]) for f in figures}
    for needed in [("batch", "ratio_to_lua"), ("batch", "ping_p99_ms"),
                   ("memory", "rss_peak_mb"), ("triggers", "ratio_to_none"),
                   ("triggers", "all_keys_complete"), ("streams", "ratio_to_worker"),
                   ("entry_cost", "ns_per_record"), ("cluster", "ratio_to_1_shard"),
                   ("cluster", "frames_per_record")]:
        assert needed in metrics, needed
    assert all(f["value"] is True for f in figures if f["metric"] == "all_keys_complete")
    assert {f["batch"] for f in figures if f["workload"] == "entry_cost"} == {1, 64, 1024}
    assert "== batch" in proc.stdout and "== entry_cost" in proc.stdout  # the summary

    sys.path.insert(0, BENCH)
    import publish
    text = publish.tables(publish.Run(str(out)))
    assert "| Wasm guest (RG.WASMRUN) |" in text and "2,000 hashes" in text
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and "no registration" not in line]
    # a header and a row per contender (batch 5, triggers 4 besides none, streams 3,
    # cluster 2, and the peers) or per batch size (entry cost 3)
    assert len(rows) == ((1 + 5 + len(BATCH_PEERS)) + (1 + 4 + len(PEERS)) + (1 + 3 + len(PEERS))
                         + (1 + 3) + (1 + 2)), text
    if FLOOR:
        assert "ratio_to_floor" in {f["metric"] for f in figures}
    assert not [row for row in rows if "–" in row], text  # no figure missing
