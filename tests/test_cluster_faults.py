"""A run across the cluster never hangs when a shard fails under it: a silent shard
(SIGSTOP) ends the run after ExecutionMaxIdleTime with the results gathered so far; a
shard killed and restarted (a new incarnation) fails the runs it took part in, naming
it; and once the shard is back, the next run succeeds."""
import ast
import signal
import time

import pytest

from conftest import Cluster, pairs, wait_until

IDLE_MS = 2000
# The victim sleeps per record, in small batches: it is mid-run for seconds, sending.
SLOW = """
import time
GB().map(lambda x: (time.sleep(0.004) if execute('EXISTS', 'slow{%s}' % hashtag()) else None,
                    x['key'])[1]).run()
"""


@pytest.fixture
def cluster():
    c = Cluster(masters=3, module_args=["ExecutionMaxIdleTime", IDLE_MS, "BatchSize", 20,
                                        "SendMsgRetries", 3]).start()
    try:
        yield c
    finally:
        c.stop()


# Every key streams to the master of its reversed name: records cross the links for a
# while (1 ms per record on each shard), and come back marked.
STREAMING = """
import time
GB().map(lambda x: (time.sleep(0.001), x['key'])[1]).repartition(lambda k: k[::-1]) \\
    .map(lambda k: k + '!').run()
"""


def every_key_marked(c):
    return sorted(k + "!" for m in c.masters for k in m.client().keys("*"))


def prepare(c):
    """Keys on every master; the last master is the slow one. Returns its id."""
    wait_until(c.linked, what="the shard links to come up")
    c.client().mset_nonatomic({f"k{i}": i for i in range(1500)})
    victim = c.masters[2]
    tags = dict(map(ast.literal_eval, c.masters[0].client().execute_command(
        "RG.PYEXECUTE", "GB('ShardsIDReader').map(lambda x: [x, hashtag()]).run()")[0]))
    victim_id = c.ids[victim.port]
    victim.client().set("slow{%s}" % tags[victim_id], 1)
    return victim, victim_id


def execution(client, eid):
    return pairs(client.execute_command("RG.GETEXECUTION", eid)[0][3])


def ended(client, eid, timeout):
    """Waits for execution `eid` to end (done or aborted); its plan as a dict."""
    wait_until(lambda: execution(client, eid)["status"] in ("aborted", "done"),
               timeout=timeout, what="the run to end")
    return execution(client, eid)


def test_a_silent_shard_ends_the_run_after_max_idle_with_partial_results(cluster):
    victim, _ = prepare(cluster)
    first = cluster.masters[0].client()
    on_victim = victim.client().dbsize()
    total = sum(m.client().dbsize() for m in cluster.masters)
    eid = first.execute_command("RG.PYEXECUTE", SLOW, "UNBLOCKING")
    time.sleep(1.0)
    victim.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        ended(first, eid, timeout=IDLE_MS / 1000 + 5)
        took = time.monotonic() - stopped
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    ex = execution(first, eid)
    assert ex["status"] == "aborted", ex
    assert "Execution max idle reached" in ex["errors"], ex
    assert took <= IDLE_MS / 1000 + 1.0, took
    results, errors = first.execute_command("RG.GETRESULTS", eid)
    # Everything of the two live shards, part of the victim's.
    assert total - on_victim < len(results) < total, (len(results), total, on_victim)
    # The shard is back: the next run succeeds.
    wait_until(cluster.linked, what="the links after SIGCONT")
    results, errors = first.execute_command("RG.PYEXECUTE", "GB().count().run()")
    assert (results, errors) == ([str(total)], [])


def test_a_restarted_shard_fails_the_runs_it_was_in_and_the_next_run_succeeds(cluster):
    victim, victim_id = prepare(cluster)
    first = cluster.masters[0].client()
    eid = first.execute_command("RG.PYEXECUTE", SLOW, "UNBLOCKING")
    time.sleep(0.5)
    victim.proc.kill()
    victim.proc.wait()
    killed = time.monotonic()
    victim.start()  # the same port and nodes.conf: the same node, a new process
    ex = ended(first, eid, timeout=10)
    assert time.monotonic() - killed < IDLE_MS / 1000 + 5
    assert ex["status"] == "aborted", ex
    assert any(victim_id in e for e in ex["errors"]), ex
    wait_until(lambda: all("cluster_state:ok" in m.client().execute_command("CLUSTER", "INFO")
                           for m in cluster.masters), timeout=20, what="the cluster to be ok")
    wait_until(cluster.linked, timeout=20, what="the links to the restarted shard")
    total = sum(m.client().dbsize() for m in cluster.masters)

    def counted():
        results, errors = first.execute_command("RG.PYEXECUTE", "GB().count().run()")
        return (results, errors) == ([str(total)], [])
    # The restarted shard learns the topology on its timer: the first run may be refused.
    wait_until(counted, timeout=10, what="a run over every shard to succeed")
    results, errors = victim.client().execute_command("RG.PYEXECUTE", "GB().count().run()")
    assert (results, errors) == ([str(total)], [])


def test_slots_moving_mid_run_fail_it_with_topology_changed(cluster):
    victim, victim_id = prepare(cluster)
    first = cluster.masters[0].client()
    eid = first.execute_command("RG.PYEXECUTE", SLOW, "UNBLOCKING")
    time.sleep(0.5)
    # An empty slot of the victim changes hands (no key moves, the topology does).
    lo, hi = cluster.ranges[2]
    slot = next(s for s in range(lo, hi + 1)
                if victim.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", s) == 0)
    new_owner = cluster.ids[cluster.masters[0].port]
    for m in cluster.masters:
        m.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", new_owner)
    ex = ended(first, eid, timeout=10)
    assert ex["status"] == "aborted" and "cluster topology changed" in ex["errors"], ex
    # The next run goes by the new topology and succeeds.
    total = sum(m.client().dbsize() for m in cluster.masters)
    results, errors = first.execute_command("RG.PYEXECUTE", "GB().count().run()")
    assert (results, errors) == ([str(total)], [])


def test_dropped_links_are_made_again_and_the_run_does_not_notice(cluster):
    """Killing the shard links' connections mid-run (CLIENT KILL of every connection whose
    last command was a link's) loses nothing: frames are sent again, duplicates dropped."""
    prepare(cluster)
    first = cluster.masters[0].client()
    total = sum(m.client().dbsize() for m in cluster.masters)
    eid = first.execute_command("RG.PYEXECUTE", STREAMING, "UNBLOCKING")
    killed = 0
    for _ in range(4):
        time.sleep(0.15)
        for m in cluster.masters:
            c = m.client()
            for entry in c.client_list():
                if entry.get("cmd") in ("rg.innermsg", "rg.hello"):
                    try:
                        killed += c.client_kill_filter(_id=entry["id"])
                    except Exception:
                        pass
    assert killed > 0
    ended(first, eid, timeout=20)
    results, errors = first.execute_command("RG.GETRESULTS", eid)
    assert errors == []
    assert sorted(results) == every_key_marked(cluster)
    assert len(results) == total
    # Some connections broke with frames on the wire: those frames were sent again.
    assert sum(m.client().info("rg")["rg_cluster_link_failures"] for m in cluster.masters) > 0


def test_a_short_freeze_loses_nothing():
    """A master frozen for 1.5 s (shorter than ExecutionMaxIdleTime) while records stream
    to it: the frames wait in the senders' windows and the run's results are complete
    (the cluster bus dropped about half of what it accepted in that case)."""
    c = Cluster(masters=3, module_args=["BatchSize", 50]).start()
    try:
        victim, _ = prepare(c)
        first = c.masters[0].client()
        total = sum(m.client().dbsize() for m in c.masters)
        eid = first.execute_command("RG.PYEXECUTE", STREAMING, "UNBLOCKING")
        time.sleep(0.2)
        victim.proc.send_signal(signal.SIGSTOP)
        time.sleep(1.5)
        victim.proc.send_signal(signal.SIGCONT)
        ex = ended(first, eid, timeout=20)
        assert ex["status"] == "done", ex
        results, errors = first.execute_command("RG.GETRESULTS", eid)
        assert errors == []
        assert sorted(results) == every_key_marked(c)
        assert len(results) == total
    finally:
        c.stop()
