"""Events on a Redis Cluster run as RedisGears 1.2 runs them: recipe 3 consumes a stream on
the shard that owns it and repartitions each field to the shard owning the field's key
(in Python and as a guest); recipe 1, written for a cluster, keeps one set per shard."""
from redis.crc import key_slot

from conftest import pairs, pyexecute, recipe, shard_tags, upload, wait_until

MESSAGES = 10_000

# Recipe 3 with INCR instead of SET: each field's counter says how often its message was
# applied. A field is named with a hashtag, so 'field:n' lives on the field's shard.
COUNTING = """
builder = GearsBuilder('StreamReader')
builder.flatmap(lambda x: [(a[0], a[1]) for a in x['value'].items()])
builder.repartition(lambda x: x[0])
builder.foreach(lambda x: execute('incr', x[0] + ':n'))
builder.register('inputStream')
"""

# Recipe 1 for a cluster: each shard keeps the keys it owns in a set of its own.
ALL_KEYS = """
builder = GearsBuilder()
builder.filter(lambda x: not x['key'].startswith('all_keys'))
builder.foreach(lambda x: execute('sadd', 'all_keys{%s}' % hashtag(), x['key']))
builder.register()
"""


def slot_tags():
    """A hashtag for each of the 16384 slots, by slot."""
    tags, n = {}, 0
    while len(tags) < SLOTS:
        tags.setdefault(key_slot(f"t{n}".encode()), f"t{n}")
        n += 1
    return [tags[slot] for slot in range(SLOTS)]


SLOTS = 16384
TAGS = slot_tags()


def message(i):
    # Two fields a message; the 20,000 fields of the 10,000 messages hash to every slot.
    return {f"{{{TAGS[2 * i % SLOTS]}}}a{i}": f"va{i}",
            f"{{{TAGS[(2 * i + 1) % SLOTS]}}}b{i}": f"vb{i}"}


def xadd_all(c, count=MESSAGES, start=0):
    owner = c.node_of("inputStream").client()
    pipe = owner.pipeline(transaction=False)
    for i in range(start, start + count):
        pipe.xadd("inputStream", message(i))
        if len(pipe) == 500:
            pipe.execute()
    pipe.execute()


def dbsize(c):
    return sum(m.client().dbsize() for m in c.masters)


def values(c, keys):
    """GET of every key through the cluster client, as a dict."""
    client = c.client()
    pipe = client.pipeline()
    for k in keys:
        pipe.get(k)
    return dict(zip(keys, pipe.execute()))


def check_applied(c, count=MESSAGES, counted=True):
    fields = [f for i in range(count) for f in message(i)]
    expected = {f: v for i in range(count) for f, v in message(i).items()}
    got = values(c, fields)
    missing = [f for f in fields if got[f] != expected[f]]
    assert not missing, f"{len(missing)} fields not set, e.g. {missing[:5]}"
    # Every field's key is on the master owning its slot (the cluster client asked it).
    if counted:
        counts = values(c, [f + ":n" for f in fields])
        wrong = {k: v for k, v in counts.items() if v != "1"}
        assert not wrong, f"{len(wrong)} messages not applied exactly once: {list(wrong.items())[:5]}"


def test_recipe3_python_repartitions_every_field_to_its_shard(cluster3r):
    c = cluster3r
    first = c.masters[0].client()
    assert pyexecute(first, recipe("stream_to_keys.py")) == "OK"
    assert pyexecute(first, COUNTING) == "OK"
    xadd_all(c)
    # The stream, every field's key and its counter.
    wait_until(lambda: dbsize(c) == 1 + 4 * MESSAGES, timeout=120, interval=0.5,
               what="every message's fields to be set")
    check_applied(c)
    # Every slot got a field; each master holds the fields of its slots.
    assert {key_slot(f.encode()) for i in range(MESSAGES) for f in message(i)} == set(range(SLOTS))
    for m in c.masters:
        assert m.client().dbsize() > MESSAGES // 2


def test_recipe3_guest_repartitions_every_field_to_its_shard(cluster3r):
    c = cluster3r
    assert upload(c.masters[1].client(), "stream_to_keys") == "OK"
    xadd_all(c)
    wait_until(lambda: dbsize(c) == 1 + 2 * MESSAGES, timeout=120, interval=0.5,
               what="every message's fields to be set")
    check_applied(c, counted=False)
    # Each message applied once: every batch ran once, none failed or was retried, and
    # the consumer group has nothing pending.
    owner = c.node_of("inputStream").client()
    (entry,) = owner.execute_command("RG.DUMPREGISTRATIONS", "CLUSTER")
    stats = pairs(pairs(entry)["RegistrationData"])
    assert stats["numFailures"] == stats["numAborted"] == 0, stats
    assert stats["numSuccess"] == stats["numTriggered"] > 0, stats
    wait_until(lambda: owner.xinfo_groups("inputStream")[0]["pending"] == 0,
               what="every batch to be acknowledged")


def test_recipe1_for_a_cluster_keeps_every_key_in_its_shards_set(cluster3r):
    c = cluster3r
    assert pyexecute(c.masters[2].client(), ALL_KEYS) == "OK"
    client = c.client()
    keys = [f"key:{i}" for i in range(MESSAGES)]
    pipe = client.pipeline()
    for k in keys:
        pipe.set(k, "v")
    pipe.execute()
    tags = shard_tags(c)

    def union():
        out = set()
        for m in c.masters:
            out |= m.client().smembers("all_keys{%s}" % tags[m.port])
        return out
    wait_until(lambda: len(union()) >= MESSAGES, timeout=60, interval=0.5,
               what="every key in a shard's set")
    assert union() == set(keys)
    # Each shard's set holds the keys that shard owns.
    for m in c.masters:
        for k in list(m.client().smembers("all_keys{%s}" % tags[m.port]))[:50]:
            assert c.node_of(k) is m


def test_trigger_runs_where_sent_and_triggeronkey_where_its_key_lives(cluster3):
    c = cluster3
    code = "GB('CommandReader').map(lambda x: hashtag()).register(trigger='where')"
    assert pyexecute(c.masters[0].client(), code) == "OK"
    tags = shard_tags(c)
    for m in c.masters:
        assert m.client().execute_command("RG.TRIGGER", "where") == [tags[m.port]]
    client = c.client()
    for key in ("alpha", "beta", "gamma", "delta", "epsilon"):
        owner = c.node_of(key)
        # The cluster client sends it to the key's master: its first key is the key.
        assert client.execute_command("RG.TRIGGERONKEY", "where", key) == [tags[owner.port]]
