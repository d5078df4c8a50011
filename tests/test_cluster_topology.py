"""What a cluster node knows of the cluster: its id is the shard id, and it keeps the
masters' slots (read once the cluster is up, then on a timer), so hashtag() names a slot
the node owns. A run reads every master: ShardsIDReader gives one record per master."""

import ast

from conftest import pairs, wait_until


def run_on(node, code):
    reply = node.client().execute_command("RG.PYEXECUTE", code)
    assert isinstance(reply, list) and reply[1] == [], reply
    return reply[0]


def test_shard_id_is_the_node_id(cluster3):
    for node in cluster3.masters:
        c = node.client()
        node_id = c.execute_command("CLUSTER", "MYID")
        assert sorted(run_on(node, "GB('ShardsIDReader').run()")) == sorted(cluster3.ids.values())
        eid = c.execute_command("RG.PYEXECUTE", "GB().run()", "UNBLOCKING")
        assert eid.startswith(node_id + "-"), eid
        wait_until(lambda: pairs(c.execute_command("RG.DUMPEXECUTIONS")[-1])["status"] == "done",
                   what="the run to finish")


def tags(node):
    """hashtag() on every master, by the id of the master it ran on."""
    pairs_ = run_on(node, "GB('ShardsIDReader').map(lambda x: [x, hashtag()]).run()")
    return dict(map(ast.literal_eval, pairs_))


def test_hashtag_names_a_slot_of_the_node(cluster3r):
    by_id = {cluster3r.ids[m.port]: m for m in cluster3r.masters}
    node = cluster3r.masters[0]
    # The topology is read on a timer once the cluster is up.
    wait_until(lambda: all(cluster3r.node_of("k{%s}" % t) is by_id[i]
                           for i, t in tags(node).items()),
               what="hashtag() to name a slot of each node")
    for tag in tags(node).values():
        assert tag and "{" not in tag, tag
    # A recipe writes through it, each shard to its own slots.
    run_on(node, "GB('ShardsIDReader')"
                 ".foreach(lambda x: execute('SET', 'mine{%s}' % hashtag(), 1)).run()")
    for i, tag in tags(node).items():
        assert by_id[i].client().get("mine{%s}" % tag) == "1"
