"""RedisGears 1.2 habits that tools and libraries rely on, item by item: execution
bookkeeping, error texts, runtime names and arguments (the doc recipes themselves are in
test_compat_docs.py)."""
import time

import pytest
import redis

from conftest import pairs, pyexecute, wait_until

ResponseError = redis.exceptions.ResponseError


@pytest.fixture
def c(r):
    return r


def executions(c):
    return {pairs(e)["executionId"]: pairs(e) for e in c.execute_command("RG.DUMPEXECUTIONS")}


# ------------------------------------------------------------------ execution bookkeeping

SLOW = """
import time
def slow(x):
    for _ in range(600):
        time.sleep(0.05)
    return x
GB('ShardsIDReader').map(slow).run()
"""


def test_abortexecution_answers_once_stopped(c):
    """1.2 answers RG.ABORTEXECUTION once the execution has stopped: a client may drop it
    right after the OK."""
    eid = pyexecute(c, SLOW, "UNBLOCKING")
    wait_until(lambda: executions(c)[eid]["status"] == "running", what="the run to start")
    t = time.monotonic()
    assert c.execute_command("RG.ABORTEXECUTION", eid) == "OK"
    assert executions(c)[eid]["status"] == "aborted"
    assert time.monotonic() - t < 5
    assert c.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert eid not in executions(c)
    # Aborting what has finished is no error.
    done = pyexecute(c, "GB('ShardsIDReader').run()", "UNBLOCKING")
    c.execute_command("RG.GETRESULTSBLOCKING", done)
    assert c.execute_command("RG.ABORTEXECUTION", done) == "OK"


def test_unregister_abortpending(c):
    rid_code = "GB('CommandReader').register(trigger='t_abortpending')"
    assert pyexecute(c, rid_code) == "OK"
    rid = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    assert c.execute_command("RG.UNREGISTER", rid, "abortpending") == "OK"
    assert c.execute_command("RG.DUMPREGISTRATIONS") == []
    assert pyexecute(c, rid_code) == "OK"
    rid = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    with pytest.raises(ResponseError, match="Unknown arguments were given: later"):
        c.execute_command("RG.UNREGISTER", rid, "later")
