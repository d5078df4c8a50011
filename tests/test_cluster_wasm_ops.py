"""Every operation of a guest (tests/guests/kitchen) on a 3-master cluster gives what it
gives on one server holding the same keys. The guest is uploaded on the cluster's first
master only: the others receive it with the first run. Results are compared parsed, as
multisets, or in order where the job sorts. accumulate and localgroupby are local
operations: the cluster gives one partial per shard, combined here."""
from collections import Counter

import pytest

from conftest import (RedisServer, _cluster_fixture, guest_regs, upload, wait_until,
                      wasmrun_ok)


def write(client):
    for i in range(300):
        client.set(f"n:{i}", i)
    for i in range(60):
        client.hset(f"h:{i}", mapping={"f": i})
    for i in range(30):
        client.rpush(f"l:{i}", "a", "b")
    for i in range(30):
        client.sadd(f"s:{i}", "m")


@pytest.fixture(scope="module")
def pair():
    """(a client of the cluster's first master, a client of the standalone server)."""
    nodes = _cluster_fixture(masters=3)
    c = next(nodes)
    one = RedisServer().start()
    try:
        wait_until(lambda: all(len(m.client().execute_command("RG.INFOCLUSTER")[4]) == 3
                               for m in c.masters), what="every node to list 3 masters")
        write(c.client())
        write(one.client())
        first = c.masters[0].client()
        for client in (first, one.client()):
            upload(client, "kitchen")
            # Its registrations (a timer that writes a key, ...) would change the keys.
            for rid in guest_regs(client, "kitchen"):
                if rid:
                    client.execute_command("RG.UNREGISTER", rid)
        one.client().delete("wasm_ticks")
        yield first, one.client()
    finally:
        one.stop()
        next(nodes, None)


def kv(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def multiset(results):
    return Counter(map(repr, results))


def pairs_of(results):
    return Counter({kv(x)["key"]: kv(x)["value"] for x in results})


def summed(results):
    out = Counter()
    for x in results:
        out[kv(x)["key"]] += kv(x)["value"]
    return out


JOBS = {
    "keys_only": multiset,
    "count": list,
    "countby_type": pairs_of,
    "distinct_types": multiset,
    "sort_keys": list,
    "sort_keys_desc": list,
    "limit": list,
    "avg_len": lambda r: [round(float(r[0]), 9)],
    "aggregate_len": list,
    "aggregateby_type": pairs_of,
    "groupby_type": pairs_of,
    "batchgroupby_type": pairs_of,
    "repartition": multiset,
    "flatmap_split": multiset,
    "filter_prefix": multiset,
}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_guest_operation_on_the_cluster_equals_one_server(pair, job):
    cluster, one = pair
    norm = JOBS[job]
    assert norm(wasmrun_ok(cluster, "kitchen", job)) == norm(wasmrun_ok(one, "kitchen", job))


def test_local_operations_give_a_partial_per_shard(pair):
    cluster, one = pair
    partials = wasmrun_ok(cluster, "kitchen", "accumulate_len")
    assert len(partials) == 3 and sum(partials) == wasmrun_ok(one, "kitchen", "accumulate_len")[0]
    local = wasmrun_ok(cluster, "kitchen", "localgroupby_type")
    assert summed(local) == pairs_of(wasmrun_ok(one, "kitchen", "localgroupby_type"))
    assert len(local) > len(wasmrun_ok(one, "kitchen", "localgroupby_type"))


def test_shards_reader_gives_one_record_per_master(pair):
    cluster, _ = pair
    assert len(set(wasmrun_ok(cluster, "kitchen", "shards"))) == 3
