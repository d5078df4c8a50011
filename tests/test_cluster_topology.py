"""What a cluster node knows of the cluster: its id is the shard id, and it keeps the
masters' slots (read once the cluster is up, then on a timer), so hashtag() names a slot
the node owns."""

from conftest import pairs, wait_until


def run_on(node, code):
    reply = node.client().execute_command("RG.PYEXECUTE", code)
    assert isinstance(reply, list) and reply[1] == [], reply
    return reply[0]


def test_shard_id_is_the_node_id(cluster3):
    for node in cluster3.masters:
        c = node.client()
        node_id = c.execute_command("CLUSTER", "MYID")
        assert run_on(node, "GB('ShardsIDReader').run()") == [node_id]
        eid = c.execute_command("RG.PYEXECUTE", "GB().run()", "UNBLOCKING")
        assert eid.startswith(node_id + "-"), eid
        wait_until(lambda: pairs(c.execute_command("RG.DUMPEXECUTIONS")[-1])["status"] == "done",
                   what="the run to finish")


def tag_of(node):
    return run_on(node, "GB('ShardsIDReader').map(lambda x: hashtag()).run()")[0]


def test_hashtag_names_a_slot_of_the_node(cluster3r):
    for node in cluster3r.masters:
        # The topology is read on a timer once the cluster is up.
        wait_until(lambda: cluster3r.node_of("k{%s}" % tag_of(node)) is node,
                   what="hashtag() to name a slot of this node")
        tag = tag_of(node)
        assert tag and "{" not in tag, tag
        # A recipe writes through it to its own shard.
        run_on(node, "GB('ShardsIDReader')"
                     ".foreach(lambda x: execute('SET', 'mine{%s}' % hashtag(), 1)).run()")
        assert node.client().get("mine{%s}" % tag) == "1"
