"""Runs across the masters of a Redis Cluster: what RG.INFOCLUSTER shows, recipe 2 on the
cluster against one server over the same data (Python and a guest the other shards
lack), records moving in batches, the shard link's guard, a refusal before any side
effect, and execute() of another shard's key."""
import os
import sys
from collections import Counter

import pytest
import redis

from conftest import (ROOT, Cluster, RedisServer, pairs, python_groupby_counts, recipe,
                      upload, wait_until, wasm_groupby_counts, wasmrun)

sys.path.insert(0, os.path.join(ROOT, "recipes", "python"))
import load_movies  # noqa: E402

MOVIES = 100_000


def info(node):
    """RG.INFOCLUSTER of a node as (my id, my runid, {id: shard entry}), and the link's
    counters of INFO rg (without their rg_cluster_ prefix)."""
    reply = node.client().execute_command("RG.INFOCLUSTER")
    assert reply[0] == "MyId" and reply[2] == "MyRunId" and len(reply) == 5, reply
    shards = {pairs(s)["id"]: pairs(s) for s in reply[4]}
    counters = {k[len("rg_cluster_"):]: v for k, v in node.client().info("rg").items()
                if k.startswith("rg_cluster_")}
    return reply[1], reply[3], shards, counters


@pytest.fixture(scope="module")
def movies_cluster():
    c = Cluster(masters=3).start()
    try:
        wait_until(c.linked, what="the shard links to come up")
        expected = load_movies.load(c.client(), MOVIES, seed=11)
        yield c, expected
        alive, logs = c.alive(), c.logs()
    finally:
        c.stop()
    assert alive, "a cluster node died:\n" + logs


def test_infocluster_shows_every_master_in_1_2_layout(movies_cluster):
    c, _ = movies_cluster
    ids = {c.ids[m.port]: (m, rng) for m, rng in zip(c.masters, c.ranges)}
    runids = {}
    for m in c.masters:
        my_id, my_runid, shards, counters = info(m)
        assert my_id == c.ids[m.port]
        assert len(my_runid) == 40
        runids[my_id] = my_runid
        assert set(shards) == set(ids)
        for sid, s in shards.items():
            node, (lo, hi) = ids[sid]
            assert (s["ip"], s["port"], s["unixSocket"]) == ("127.0.0.1", node.port, "None")
            assert (s["minHslot"], s["maxHslot"]) == (lo, hi)
            assert isinstance(s["pendingMessages"], int)
        assert set(counters) == {"frames_sent", "bytes_sent", "frames_received",
                                 "link_failures", "pending_messages", "runs_in_flight"}
    # Each shard's runid, as every other shard knows it, is its own incarnation.
    for m in c.masters:
        for sid, s in info(m)[2].items():
            assert s["runid"] == runids[sid]


def test_refreshcluster_changes_nothing_when_nothing_changed(movies_cluster):
    c, _ = movies_cluster
    before = [info(m)[:3] for m in c.masters]
    for m in c.masters:
        assert m.client().execute_command("RG.REFRESHCLUSTER") == "OK"
    assert [info(m)[:3] for m in c.masters] == before


def test_infocluster_standalone(r):
    assert r.execute_command("RG.INFOCLUSTER") == "no cluster mode"
    assert r.execute_command("RG.REFRESHCLUSTER") == "OK"


@pytest.fixture(scope="module")
def one_server(movies_cluster):
    """A standalone server with the same movies."""
    s = RedisServer().start()
    try:
        load_movies.load(s.client(), MOVIES, seed=11)
        yield s
    finally:
        s.stop()


def test_recipe2_python_on_the_cluster_equals_one_server(movies_cluster, one_server):
    c, expected = movies_cluster
    code = recipe("count_genres.py")
    alone = one_server.client().execute_command("RG.PYEXECUTE", code)
    for m in c.masters:
        results, errors = m.client().execute_command("RG.PYEXECUTE", code)
        assert errors == []
        assert python_groupby_counts(results) == python_groupby_counts(alone[0])
        assert python_groupby_counts(results) == Counter(expected)


def test_recipe2_guest_uploaded_to_one_master_runs_on_all_without_shipping_it(
        movies_cluster, one_server):
    c, expected = movies_cluster
    first = c.masters[0]
    upload(first.client(), "genres")
    upload(one_server.client(), "genres")
    alone, errors = wasmrun(one_server.client(), "genres", "count", "movie:*")
    assert errors == []
    # The upload went to every master: the run ships no guest bytes.
    hashes = {pairs(g[0])["hash"] if g else None
              for g in (m.client().execute_command("RG.WASMLIST") for m in c.masters)}
    assert len(hashes) == 1 and None not in hashes
    sent = sum(info(m)[3]["bytes_sent"] for m in c.masters)
    results, errors = wasmrun(first.client(), "genres", "count", "movie:*")
    assert errors == []
    assert wasm_groupby_counts(results) == wasm_groupby_counts(alone) == Counter(expected)
    size = os.path.getsize(os.path.join(ROOT, "target", "wasm32-wasip2", "release",
                                        "genres.wasm"))
    assert sum(info(m)[3]["bytes_sent"] for m in c.masters) - sent < size
    first.client().execute_command("RG.WASMDELETE", "genres")
    for m in c.masters:
        assert m.client().execute_command("RG.WASMLIST") == []


def test_a_shuffle_moves_records_in_batches(movies_cluster):
    """Repartition by a field unrelated to the key: about two records in three move to
    another shard, in far fewer frames than records."""
    c, _ = movies_cluster
    frames = sum(info(m)[3]["frames_sent"] for m in c.masters)
    results, errors = c.masters[0].client().execute_command(
        "RG.PYEXECUTE",
        "GB().map(lambda x: x['key'][::-1]).repartition(lambda x: x).count().run()")
    assert errors == []
    total = int(results[0])
    assert total >= MOVIES
    frames = sum(info(m)[3]["frames_sent"] for m in c.masters) - frames
    moved = total * 2 // 3
    assert frames / moved < 0.01, (frames, moved)


def test_execute_of_another_shards_key_names_its_slot(movies_cluster):
    c, _ = movies_cluster
    m = c.masters[0]
    # A key of the last master's range (its slot is known to the cluster).
    key = next(f"probe{i}" for i in range(10_000) if c.node_of(f"probe{i}") is c.masters[2])
    slot = m.client().execute_command("CLUSTER", "KEYSLOT", key)
    results, errors = m.client().execute_command(
        "RG.PYEXECUTE", f"GB('ShardsIDReader').map(lambda x: execute('GET', '{key}')).run()")
    owner = c.ids[c.masters[2].port]
    mine = [e for e in errors if f"slot {slot}" in e and owner in e and key in e]
    assert len(mine) == 2, errors  # the two shards that do not own it
    assert "repartition" in mine[0]


def test_internal_commands_refuse_clients_that_are_not_peers():
    """Peers connect as the cluster's masteruser; anyone else is refused, and runs still
    go everywhere."""
    users = ["--user", *"gears-peer on >peerpw ~* &* +@all".split(),
             "--user", *"ops on >opspw ~* &* +@all".split(),
             "--masteruser", "gears-peer", "--masterauth", "peerpw"]
    c = Cluster(masters=3, extra_args=users).start()
    try:
        wait_until(c.linked, what="the shard links to come up")
        m = c.masters[0]
        for client in (m.client(), m.client(username="ops", password="opspw")):
            for cmd in (["RG.INNERMSG", "RGX1" + "0" * 200], ["RG.HELLO"]):
                with pytest.raises(redis.exceptions.NoPermissionError, match="shards of the cluster"):
                    client.execute_command(*cmd)
        peer = m.client(username="gears-peer", password="peerpw")
        assert len(peer.execute_command("RG.HELLO")) == 40
        with pytest.raises(redis.exceptions.ResponseError, match="not a frame"):
            peer.execute_command("RG.INNERMSG", "garbage")
        c.client().mset_nonatomic({f"a{i}": i for i in range(300)})
        results, errors = m.client().execute_command("RG.PYEXECUTE", "GB().count().run()")
        assert (results, errors) == (["300"], [])
    finally:
        c.stop()


def test_python_off_on_one_shard_refuses_the_run_on_all_before_any_side_effect():
    c = Cluster(masters=3, master_module_args={2: ["PythonEnabled", "0"]}).start()
    try:
        wait_until(c.linked, what="the shard links to come up")
        client = c.client()
        for i in range(300):
            client.set(f"{{t{i}}}k", i)
        results, errors = c.masters[0].client().execute_command(
            "RG.PYEXECUTE",
            "GB().foreach(lambda x: execute('SET', x['key'] + ':seen', 1)).count().run()")
        off = c.ids[c.masters[2].port]
        assert results == []
        assert any(off in e and "PythonEnabled 0" in e for e in errors), errors
        assert not any(m.client().keys("*:seen") for m in c.masters)
    finally:
        c.stop()


def test_execution_commands_reach_every_shard(movies_cluster):
    """GETEXECUTION `id CLUSTER` shows each shard's part; ABORTEXECUTION stops them all;
    DROPEXECUTION drops them all."""
    c, _ = movies_cluster
    first = c.masters[0].client()
    eid = first.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').run()", "UNBLOCKING")
    wait_until(lambda: pairs(first.execute_command("RG.GETEXECUTION", eid)[0][3])["status"]
               == "done", what="the run to end")
    parts = first.execute_command("RG.GETEXECUTION", eid, "CLUSTER")
    assert sorted(p[1] for p in parts) == sorted(c.ids.values())
    for p in parts:
        plan = pairs(p[3])
        assert plan["status"] == "done", plan
    mine = pairs(next(p for p in parts if p[1] == c.ids[c.masters[0].port])[3])
    assert (mine["shards_received"], mine["shards_completed"], mine["results"]) == (3, 3, 3)
    assert len(first.execute_command("RG.GETEXECUTION", eid, "SHARD")) == 1
    # Dropped on the initiator: gone everywhere.
    assert first.execute_command("RG.DROPEXECUTION", eid) == "OK"
    for m in c.masters:
        wait_until(lambda: eid not in [pairs(e)["executionId"] for e in
                                       m.client().execute_command("RG.DUMPEXECUTIONS")],
                   what=f"the part on {m.port} to be dropped")
    # A slow run aborted on the initiator ends on every shard.
    slow = "import time\nGB().map(lambda x: (time.sleep(0.01), x['key'])[1]).run()"
    eid = first.execute_command("RG.PYEXECUTE", slow, "UNBLOCKING")
    wait_until(lambda: len(first.execute_command("RG.GETEXECUTION", eid, "CLUSTER")) == 3,
               what="every shard to have its part")
    assert first.execute_command("RG.ABORTEXECUTION", eid) == "OK"

    def statuses():
        return [pairs(p[3])["status"] for p in
                first.execute_command("RG.GETEXECUTION", eid, "CLUSTER")]
    wait_until(lambda: statuses() == ["aborted"] * 3, timeout=10,
               what="every shard's part to be aborted")
    results, errors = first.execute_command("RG.GETRESULTS", eid)
    assert "Execution was aborted" in errors


def test_recipe2_on_masters_with_replicas(cluster3r):
    """Replicas take no part (they own no slots) and change nothing."""
    wait_until(cluster3r.linked, what="the shard links to come up")
    expected = Counter(load_movies.load(cluster3r.client(), MOVIES, seed=5))
    m = cluster3r.masters[1]
    for node in cluster3r.masters:
        assert set(info(node)[2]) == {cluster3r.ids[x.port] for x in cluster3r.masters}
    results, errors = m.client().execute_command("RG.PYEXECUTE", recipe("count_genres.py"))
    assert errors == [] and python_groupby_counts(results) == expected
    upload(m.client(), "genres")
    results, errors = wasmrun(m.client(), "genres", "count", "movie:*")
    assert errors == [] and wasm_groupby_counts(results) == expected


def test_a_repeated_run_does_not_send_its_plan_again(movies_cluster):
    """Plans are known by their hash: the second run of the same script offers the other
    shards its hash, not its 300 KB pickle."""
    c, _ = movies_cluster
    first = c.masters[0].client()
    code = ("BIG = 'x' * 300_000\n"
            "GB('ShardsIDReader').map(lambda x: len(BIG)).run()")

    def sent_by_run():
        before = info(c.masters[0])[3]["bytes_sent"]
        results, errors = first.execute_command("RG.PYEXECUTE", code)
        assert (results, errors) == (["300000"] * 3, [])
        return info(c.masters[0])[3]["bytes_sent"] - before
    assert sent_by_run() > 2 * 300_000
    assert sent_by_run() < 20_000


def test_links_with_a_dedicated_user_and_a_frame_secret():
    """ClusterUser / ClusterPassword replace masteruser for the links, ClusterSecret signs
    every frame: runs work, the secret stays hidden, and an unsigned frame is refused even
    from the links' user."""
    module_args = ["ClusterUser", "gears-link", "ClusterPassword", "linkpw",
                   "ClusterSecret", "s3cr3t"]
    users = ["--user", *"gears-link on >linkpw ~* &* -@all +rg.hello +rg.innermsg".split()]
    c = Cluster(masters=3, module_args=module_args, extra_args=users).start()
    try:
        wait_until(c.linked, what="the shard links to come up")
        m = c.masters[0]
        c.client().mset_nonatomic({f"s{i}": i for i in range(300)})
        results, errors = m.client().execute_command(
            "RG.PYEXECUTE", "GB().map(lambda r: r['key']).collect().count().run()")
        assert (results, errors) == (["300"], [])
        assert m.client().execute_command("RG.CONFIGGET", "ClusterSecret") == ["(set)"]
        (refused,) = m.client().execute_command("RG.CONFIGSET", "ClusterSecret", "x")
        assert "load time" in str(refused)
        with pytest.raises(redis.exceptions.NoPermissionError):
            m.client().execute_command("RG.HELLO")
        link = m.client(username="gears-link", password="linkpw")
        unsigned = b"RGX1" + bytes([5, 0]) + b"0" * 128
        with pytest.raises(redis.exceptions.ResponseError, match="unsigned frame"):
            link.execute_command("RG.INNERMSG", unsigned)
    finally:
        c.stop()
