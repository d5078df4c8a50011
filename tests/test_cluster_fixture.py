"""The cluster fixtures of conftest (Cluster, cluster3, cluster3r) and what the module does
on a Redis Cluster today.

Every test gets a fresh cluster: about 3 s, most of it the 2 s a new cluster master waits
before it reports the cluster ok. A run started on any master reads every master's keys.
"""
import itertools
import os
from collections import Counter

import pytest

from conftest import Cluster, run_ok, wait_until


def cluster_info(node):
    raw = node.client().execute_command("CLUSTER", "INFO")
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line)


def keys_on(cluster, master, count):
    """`count` key names whose slot `master` owns."""
    keys = (f"k{i}" for i in itertools.count())
    return list(itertools.islice((k for k in keys if cluster.node_of(k) is master), count))


def test_every_node_loads_the_module_and_sees_the_cluster_ok(cluster3r):
    assert len(cluster3r.masters) == 3 and len(cluster3r.replicas) == 3
    for n in cluster3r.nodes:
        c = n.client()
        assert "rg" in [m["name"] for m in c.module_list()], n.port
        info = cluster_info(n)
        assert info["cluster_state"] == "ok", (n.port, info)
        assert info["cluster_known_nodes"] == "6" and info["cluster_size"] == "3", info
    for m, r in zip(cluster3r.masters, cluster3r.replicas):
        assert m.client().execute_command("ROLE")[0] == "master"
        role = r.client().execute_command("ROLE")
        assert role[:3] == ["slave", "127.0.0.1", m.port] and role[3] == "connected", role


def test_keys_spread_over_the_masters(cluster3):
    rc = cluster3.client()
    keys = [f"key:{i}" for i in range(1000)]
    pipe = rc.pipeline()
    for k in keys:
        pipe.set(k, k)
    assert all(pipe.execute())
    sizes = {m.port: m.client().dbsize() for m in cluster3.masters}
    assert all(size > 0 for size in sizes.values()), sizes
    assert sum(sizes.values()) == 1000
    # node_of agrees with where the keys went.
    assert Counter(cluster3.node_of(k).port for k in keys) == sizes
    for k in keys[:20]:
        assert cluster3.node_of(k).client().get(k) == k


def test_write_on_a_master_reaches_its_replica(cluster3r):
    rc = cluster3r.client()
    for m, r in zip(cluster3r.masters, cluster3r.replicas):
        (key,) = keys_on(cluster3r, m, 1)
        rc.set(key, "v-" + key)
        # One connection: READONLY holds per connection, and it lets the replica serve
        # reads of its master's slots instead of answering MOVED.
        rep = r.client(single_connection_client=True)
        rep.execute_command("READONLY")
        try:
            wait_until(lambda: rep.get(key) == "v-" + key, what=f"{key} on replica {r.port}")
        finally:
            rep.close()


def test_a_run_counts_every_masters_keys(cluster3):
    rc = cluster3.client()
    pipe = rc.pipeline()
    for i in range(1000):
        pipe.set(f"n:{i}", i)
    pipe.execute()
    for m in cluster3.masters:
        c = m.client()
        size = c.dbsize()
        assert 0 < size < 1000
        assert run_ok(c, "GB().count().run()") == ["1000"], m.port


def test_a_stopped_master_is_seen():
    # Its own cluster, not the fixture: the fixture fails a test in which a node died.
    cluster = Cluster(masters=3).start()
    try:
        assert cluster.alive()
        gone = cluster.masters[1]
        gone.proc.terminate()
        gone.proc.wait(timeout=10)
        assert not cluster.alive()
        assert all(n.alive() for n in cluster.nodes if n is not gone)
        assert f"master {gone.port} (exited 0)" in cluster.logs()
    finally:
        cluster.stop()
    assert not any(n.alive() for n in cluster.nodes)
    assert not os.path.exists(cluster.dir)


def test_a_cluster_that_cannot_start_leaves_nothing_behind():
    cluster = Cluster(masters=3, extra_args=["--no-such-option", "1"])
    with pytest.raises(AssertionError, match="the cluster did not start"):
        cluster.start()
    assert all(n.proc is None or n.proc.poll() is not None for n in cluster.nodes)
    assert not os.path.exists(cluster.dir)
