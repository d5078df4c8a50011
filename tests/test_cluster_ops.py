"""Every operation on a 3-master cluster gives what it gives on one standalone server.

The same keys (strings, hashes, lists, sets; plain names like k17, so they spread over every
master's slots) are written to a cluster through a cluster client and to a standalone server
through a plain client. Each row of OPS runs one recipe on both and compares the results,
parsed with ast.literal_eval, as multisets, or as lists where the operation defines an order
(sort; limit after sort). The error lists must be equal too: empty, except in the rows where
a step raises on purpose.

The local operations of SPEC.md (accumulate, localgroupby, limit) run on each shard over its
own records, so a cluster gives one partial result per shard; their rows combine the partials
and check there were three. ShardsIDReader gives one record per master.

Operations that move records run with and without a Python step before the move: records
a reader made and records a Python step made both travel.

The cluster and the server start once for the file (the runs only read, except the foreach
side effect test, which removes what it wrote). Every row runs from each master in turn: the
initiator is the shard collect gathers to.
"""
import ast
from collections import Counter, namedtuple

import pytest

from conftest import _cluster_fixture, pairs, pyexecute, run, run_ok, wait_until

STRINGS = 2000  # k0..k1999 = str(i)
HASHES = 800  # h0..h799 = {g: g0..g6, n: i, ref: a string key}
LISTS = 100  # list:0.. = [i, i + 1, 'x']
SETS = 100  # set:0.. = {a, b}
GROUPS = 7


def write_data(pipe):
    for i in range(STRINGS):
        pipe.set(f"k{i}", i)
    for i in range(HASHES):
        pipe.hset(f"h{i}", mapping={"g": f"g{i % GROUPS}", "n": i,
                                    "ref": f"k{(i * 37) % STRINGS}"})
    for i in range(LISTS):
        pipe.rpush(f"list:{i}", i, i + 1, "x")
    for i in range(SETS):
        pipe.sadd(f"set:{i}", "a", "b")
    pipe.execute()


TOTAL = STRINGS + HASHES + LISTS + SETS


@pytest.fixture(scope="module")
def cluster():
    """3 masters, their gears topology current, the data written."""
    nodes = _cluster_fixture(masters=3)
    c = next(nodes)
    try:
        # RedisGears 1.2 users ran RG.REFRESHCLUSTER after forming a cluster; it still
        # works (a run reads the topology as it starts anyway). Every node lists every
        # master.
        for m in c.masters:
            assert m.client().execute_command("RG.REFRESHCLUSTER") == "OK"
        for m in c.masters:
            wait_until(lambda: len(m.client().execute_command("RG.INFOCLUSTER")[4]) == 3,
                       what=f"node {m.port} to list 3 masters")
        write_data(c.client().pipeline())
        sizes = [m.client().dbsize() for m in c.masters]
        assert sum(sizes) == TOTAL and all(s > 0 for s in sizes), sizes
    except BaseException:
        nodes.close()
        raise
    yield c
    next(nodes, None)  # stops the cluster; fails if a node died


@pytest.fixture(scope="module")
def standalone(server):
    """The file's standalone server (conftest's module-scoped one) with the same data."""
    c = server.client()
    c.flushall()
    write_data(c.pipeline(transaction=False))
    assert c.dbsize() == TOTAL
    yield server


# ---------------------------------------------------------------------------------------
# normalizing results
# ---------------------------------------------------------------------------------------


def parse(s):
    """A result string as the Python value it is the str() of; a plain string (a key name)
    stays itself."""
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError):
        return s


def canon(v):
    """A hashable, order-free form of a parsed value (dict items sorted, lists as tuples)."""
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, canon(x)) for k, x in v.items())))
    if isinstance(v, (list, tuple)):
        return ("list", tuple(canon(x) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("set", frozenset(canon(x) for x in v))
    return v


def multiset(results):
    return Counter(canon(parse(r)) for r in results)


def ordered(results):
    return [parse(r) for r in results]


def groups(results):
    """groupby-style results as {key: value}; a key twice is a failure."""
    out = {}
    for rec in map(parse, results):
        assert isinstance(rec, dict) and set(rec) == {"key", "value"}, rec
        assert rec["key"] not in out, f"key {rec['key']!r} twice"
        out[rec["key"]] = rec["value"]
    return out


def partials(combine):
    """For a local operation: (number of results, combine(parsed results))."""
    return lambda results: (len(results), combine([parse(r) for r in results]))


def merged_groups(results):
    """localgroupby results, one partial per shard and key, summed per key."""
    out = Counter()
    for rec in map(parse, results):
        assert set(rec) == {"key", "value"}, rec
        out[rec["key"]] += rec["value"]
    return len(results), dict(out)


def equal(on_cluster, alone):
    assert on_cluster == alone


def per_shard(count):
    """For local operations: the cluster gives `count` results per master and the same
    combined value; the standalone server `count`."""
    def check(on_cluster, alone):
        assert on_cluster[0] == 3 * count and alone[0] == count, (on_cluster[0], alone[0])
        assert on_cluster[1] == alone[1]
    return check


def one_per_master(on_cluster, alone):
    """(records, distinct ids): three on the cluster, one standalone."""
    assert (on_cluster, alone) == ((3, 3), (1, 1))


# ---------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------

Row = namedtuple("Row", "code norm check errors", defaults=(equal, "none"))
# errors: "none" -> both error lists empty; "equal" -> equal as multisets (and not empty).



HASH = "filter(lambda r: r['type'] == 'hash')"
STR = "filter(lambda r: r['type'] == 'string')"

OPS = {
    # Readers.
    "KeysReader": Row("GB().run()", multiset),
    "KeysOnlyReader": Row("GB('KeysOnlyReader').run()", multiset),
    "pattern": Row("GB().map(lambda r: [r['key'], r['value']]).run('k1*')", multiset),
    "KeysOnlyReader-pattern": Row("GB('KeysOnlyReader').run('h1*')", multiset),
    # One per master (ids differ from the standalone's zeros: compare counts).
    "ShardsIDReader": Row("GB('ShardsIDReader').run()", lambda res: (len(res), len(set(res))),
                          one_per_master),
    # Local, record by record.
    "map": Row("GB().map(lambda r: [r['key'], r['type']]).run()", multiset),
    "flatmap": Row(f"GB().{HASH}.flatmap(lambda r: [[r['key'], f, v] for f, v in"
                   " sorted(r['value'].items())]).run()", multiset),
    "filter": Row(f"GB().{STR}.filter(lambda r: int(r['value']) % 7 == 0)"
                  ".map(lambda r: r['key']).run()", multiset),
    "foreach": Row("GB().foreach(lambda r: r.update(seen=len(r['key'])))"
                   ".map(lambda r: [r['key'], r['seen']]).run()", multiset),
    # Local, one result per shard.
    "accumulate": Row("GB('KeysOnlyReader').map(lambda k: len(k))"
                      ".accumulate(lambda a, x: (a or 0) + x).run()", partials(sum),
                      per_shard(1)),
    "localgroupby": Row(f"GB().{HASH}.localgroupby(lambda r: r['value']['g'],"
                        " lambda k, a, r: (a or 0) + int(r['value']['n'])).run()",
                        merged_groups, per_shard(GROUPS)),
    "limit-local": Row("GB('KeysOnlyReader').limit(5).run()",
                       partials(lambda keys: len(set(keys)) == len(keys)), per_shard(5)),
    # Moving records.
    # Every record ends on the initiator: one hashtag. Records straight from a reader...
    "collect-after-reader": Row("GB('KeysOnlyReader').collect().map(lambda k: [k, hashtag()]).run()",
                                lambda res: (Counter(k for k, _ in map(parse, res)),
                                             len({t for _, t in map(parse, res)}))),
    # ...and records a Python step made.
    "collect": Row("GB().map(lambda r: r['key']).collect().map(lambda k: [k, hashtag()]).run()",
        lambda res: (Counter(k for k, _ in map(parse, res)),
                     len({t for _, t in map(parse, res)}))),
    # Tuples and sets a Python step made arrive as tuples and sets (and print so).
    "tuples-and-sets": Row("GB().map(lambda r: (r['key'], {1, 2}, [(3,)]))"
                           ".collect()"
                           ".map(lambda t: [type(t).__name__, type(t[1]).__name__,"
                           " type(t[2][0]).__name__, str(t)]).run('k1*')", multiset),
    # The records stay put here (each is on the master owning its key already)...
    "repartition-own-key": Row("GB().repartition(lambda r: r['key'])"
                               ".map(lambda r: execute('GET', r['key'])).run('k*')", multiset),
    # ...and move here: each hash's ref names a string key, most often on another master,
    # and GET works only there.
    "repartition-other-key": Row("GB().repartition(lambda r: r['value']['ref'])"
                                 ".map(lambda r: [r['key'], execute('GET', r['value']['ref'])])"
                                 ".run('h*')", multiset),
    "repartition-after-python-step": Row(f"GB().{HASH}.repartition(lambda r: r['value']['ref'])"
        ".map(lambda r: [r['key'], execute('GET', r['value']['ref'])]).run()", multiset),
    "groupby": Row("GB().groupby(lambda r: r['type'],"
                   " lambda k, a, r: (a or 0) + len(r['key'])).run()", groups),
    "groupby-after-python-step": Row(f"GB().{HASH}.groupby(lambda r: r['value']['g'],"
        " lambda k, a, r: (a or 0) + int(r['value']['n'])).run()", groups),
    "batchgroupby": Row("GB().batchgroupby(lambda r: r['type'],"
                        " lambda k, recs: [len(recs), sum(len(r['key']) for r in recs)]).run()",
                        groups),
    "batchgroupby-after-python-step": Row(f"GB().{HASH}.batchgroupby(lambda r: r['value']['g'],"
        " lambda k, recs: [len(recs), sorted(int(r['value']['n']) for r in recs)]).run()",
        groups),
    # The partial of each shard is a Python value, and travels.
    "aggregate": Row("GB().aggregate({'n': 0, 'sum': 0},"
        " lambda a, r: {'n': a['n'] + 1, 'sum': a['sum'] + int(r['value'])},"
        " lambda a, b: {'n': a['n'] + b['n'], 'sum': a['sum'] + b['sum']}).run('k*')",
        ordered),
    "aggregateby": Row(f"GB().{HASH}.aggregateby(lambda r: r['value']['g'], [],"
                       " lambda k, a, r: (a.append(int(r['value']['n'])), a)[1],"
                       " lambda k, a, x: (a.extend(x), a)[1])"
                       ".map(lambda g: {'key': g['key'], 'value': sorted(g['value'])}).run()",
                       groups),
    "count": Row("GB().count().run()", ordered),
    "countby": Row("GB().countby(lambda r: r['type']).run()", groups),
    "countby-identity": Row("GB('KeysOnlyReader').map(lambda k: k[:2]).countby().run()", groups),
    "distinct": Row(f"GB().{STR}.map(lambda r: int(r['value']) % 101).distinct().run()",
                    multiset),
    "sort": Row("GB('KeysOnlyReader').sort().run()", ordered),
    "sort-reverse": Row(f"GB().{STR}.map(lambda r: int(r['value'])).sort(reverse=True).run()",
                        ordered),
    "sort-limit": Row("GB('KeysOnlyReader').sort().limit(10, 1234).run()", ordered),
    "avg": Row(f"GB().{STR}.map(lambda r: r['value']).avg().run()", ordered),
    "avg-extract": Row(f"GB().{HASH}.avg(lambda r: int(r['value']['n'])).run()", ordered),
    # A step raising for some records: each side reports the same errors.
    "map-raises": Row(f"GB().{STR}.map(lambda r: 1 // (int(r['value']) % 10)).run()",
                      multiset, errors="equal"),
    "raise-after-collect": Row("GB('KeysOnlyReader').collect()"
                               ".map(lambda k: 1 // (len(k) % 2)).run('k*')",
                               multiset, errors="equal"),
    "raise-after-repartition": Row("GB().repartition(lambda r: r['value']['ref'])"
                                   ".map(lambda r: 1 // (int(execute('GET', r['value']['ref']))"
                                   " % 3)).run('h*')", multiset, errors="equal"),
}


def error_kinds(errors):
    """An error list as a multiset of first lines (the traceback is the same text anyway)."""
    return Counter(e.split("\n", 1)[0] for e in errors)


@pytest.mark.parametrize("initiator", range(3))
@pytest.mark.parametrize("row", OPS.values(), ids=OPS.keys())
def test_operation_same_on_cluster_and_standalone(cluster, standalone, row, initiator):
    """A run over every master's keys gives what one server holding them all gives."""
    on_cluster, errors_cluster = run(cluster.masters[initiator].client(), row.code)
    alone, errors_alone = run(standalone.client(), row.code)
    if row.errors == "none":
        assert errors_cluster == [] and errors_alone == [], (errors_cluster[:3], errors_alone[:3])
    else:
        assert errors_alone, "the row expects errors"
        assert error_kinds(errors_cluster) == error_kinds(errors_alone)
    assert alone, "the row expects results"
    row.check(row.norm(on_cluster), row.norm(alone))


# ---------------------------------------------------------------------------------------
# beyond the table
# ---------------------------------------------------------------------------------------


def test_foreach_writes_on_the_shard_of_each_record(cluster, standalone):
    """foreach runs where the record was read: a write to '{hashtag()}' lands on that same
    master, once per key it owns."""
    code = ("GB('KeysOnlyReader')"
            ".foreach(lambda k: execute('INCR', 'seen{%s}' % hashtag())).count().run('k*')")
    try:
        assert run_ok(cluster.masters[1].client(), code) == [str(STRINGS)]
        for m in cluster.masters:
            c = m.client()
            (key,) = c.keys("seen{*")
            assert int(c.get(key)) == len(c.keys("k*")), m.port
        alone = standalone.client()
        assert run_ok(alone, code) == [str(STRINGS)]
        (key,) = alone.keys("seen{*")
        assert int(alone.get(key)) == STRINGS
    finally:
        for m in cluster.masters:
            c = m.client()
            for k in c.keys("seen{*"):
                c.delete(k)
        alone = standalone.client()
        for k in alone.keys("seen{*"):
            alone.delete(k)


def plan(client, eid):
    reply = client.execute_command("RG.GETEXECUTION", eid)
    assert len(reply) == 1 and reply[0][0] == "shard_id", reply
    return pairs(reply[0][3])


@pytest.mark.parametrize("initiator", range(3))
def test_a_run_involves_every_shard(cluster, initiator):
    """An UNBLOCKING run's plan on the initiator: every master received it and completed."""
    c = cluster.masters[initiator].client()
    eid = pyexecute(c, "GB().count().run()", "UNBLOCKING")
    assert eid.startswith(c.execute_command("CLUSTER", "MYID") + "-"), eid
    wait_until(lambda: plan(c, eid)["status"] == "done", what="the run to finish")
    p = plan(c, eid)
    assert (p["shards_received"], p["shards_completed"]) == (3, 3), p
    assert p["errors"] == [], p
    assert c.execute_command("RG.GETRESULTS", eid) == [[str(TOTAL)], []]
