"""Workload 6, the cluster: recipe 2 (count movies by genre) on a 3-master Redis Cluster
against one server holding the same movies, in Python and as a guest, and the cost of a
shuffle: how many link frames a repartition of every movie takes per record moved.

On this 2-core machine three masters share the cores one server has, so expect overhead,
not speed-up: the ratio says what spreading the data costs (the plan sent to every shard,
the two-phase start, the partial counts gathered), not what more machines would give.
"""
import time
from collections import Counter

from batch import ok
from conftest import Cluster, wait_until
from harness import deploy_guest, interleaved, median_of, python_groupby_counts, recipe, \
    wasm_groupby_counts
from load_movies import load


def infos(cluster):
    """The links' counters of INFO rg, summed over the masters."""
    total = Counter()
    for m in cluster.masters:
        total.update({k: v for k, v in m.client().info("rg").items()
                      if k.startswith("rg_cluster_")})
    return total


def run(figures, server, count, rounds):
    one = server.client()
    one.flushall()
    cluster = Cluster(masters=3).start()
    try:
        wait_until(cluster.linked, what="the shard links")
        t0 = time.perf_counter()
        expected = Counter(load(cluster.client(), count))
        figures.add("cluster", "loader", "load_seconds", time.perf_counter() - t0, "s",
                    keys=count, masters=3)
        assert Counter(load(one, count)) == expected
        first = cluster.masters[0].client()
        undeploy = [deploy_guest(one, "genres"), deploy_guest(first, "genres")]
        code = recipe("count_genres.py")
        jobs = {
            "python_1_shard": lambda: python_groupby_counts(
                ok(one.execute_command("RG.PYEXECUTE", code))),
            "python_3_masters": lambda: python_groupby_counts(
                ok(first.execute_command("RG.PYEXECUTE", code))),
            "wasm_1_shard": lambda: wasm_groupby_counts(
                ok(one.execute_command("RG.WASMRUN", "genres", "count", "movie:*"))),
            "wasm_3_masters": lambda: wasm_groupby_counts(
                ok(first.execute_command("RG.WASMRUN", "genres", "count", "movie:*"))),
        }
        # Ship and compile the guest on the shards that lack it once, as a deployed guest is.
        jobs["wasm_3_masters"]()

        def run_one(name):
            t = time.perf_counter()
            got = jobs[name]()
            took = time.perf_counter() - t
            assert got == expected, (name, got)
            return {"seconds": took}

        results = interleaved(jobs, rounds, run_one)
        for lang in ("python", "wasm"):
            alone = median_of(results[f"{lang}_1_shard"], "seconds")
            spread = median_of(results[f"{lang}_3_masters"], "seconds")
            figures.add("cluster", f"{lang}_1_shard", "seconds", alone, "s", keys=count)
            figures.add("cluster", f"{lang}_3_masters", "seconds", spread, "s", keys=count)
            figures.add("cluster", f"{lang}_3_masters", "ratio_to_1_shard", spread / alone,
                        "x", keys=count)
        # The shuffle: every movie to the master owning its reversed key.
        before = infos(cluster)
        t = time.perf_counter()
        moved = ok(first.execute_command(
            "RG.PYEXECUTE",
            "GB('KeysOnlyReader').map(lambda k: k[::-1]).repartition(lambda k: k)"
            ".count().run('movie:*')"))
        took = time.perf_counter() - t
        assert int(moved[0]) == count, moved
        after = infos(cluster)
        frames = after["rg_cluster_frames_sent"] - before["rg_cluster_frames_sent"]
        # About two records in three go to another master.
        figures.add("cluster", "repartition", "seconds", took, "s", keys=count)
        figures.add("cluster", "repartition", "frames_per_record", frames / (count * 2 / 3),
                    "frames", keys=count)
        figures.add("cluster", "repartition", "bytes_per_record",
                    (after["rg_cluster_bytes_sent"] - before["rg_cluster_bytes_sent"]) / (count * 2 / 3), "B",
                    keys=count)
        for undo in undeploy:
            undo()
    finally:
        cluster.stop()
        one.flushall()
