"""The newer module API a server offers, read at load (one log line), and each path the
module takes with it or without it (docs/servers.md).

Redis 7.0 lacks post-notification jobs and ACL categories; Redis 7.4 and Valkey 8.1 have
every entry. An entry that all three servers have (module configs, the cluster API) is
hidden with GEARS_TEST_WITHOUT in the server's environment to run its fallback; so is an
entry the newer servers have, to run the older path there too. Post-notification jobs
have their own file (test_post_notification_jobs.py).
"""
import re

import pytest
import redis

from conftest import Cluster, RedisServer, server_binary

EVERYTHING = {"post-notification-jobs", "acl-categories", "acl-category-add", "context-user",
              "module-configs", "cluster-api"}
OFFERED = {
    "redis-7.0": {"context-user", "module-configs", "cluster-api"},
    "redis-7.4": EVERYTHING,
    "valkey-8.1": EVERYTHING,
}


def offered(log):
    """The capabilities the load line says yes to."""
    (line,) = re.findall(r"gears: this server offers: (.*)", log)
    said = dict(item.rsplit(" ", 1) for item in line.split(", "))
    assert set(said) == EVERYTHING and set(said.values()) <= {"yes", "no"}, line
    return {name for name, yes in said.items() if yes == "yes"}


@pytest.fixture
def start():
    servers = []

    def make(name, hide=None, **kwargs):
        env = {"GEARS_TEST_WITHOUT": hide} if hide else None
        s = RedisServer(binary=server_binary(name), env=env, **kwargs)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        alive, log = s.alive(), s.log()
        s.stop()
        assert alive, log[-3000:]


@pytest.mark.parametrize("name", sorted(OFFERED))
def test_the_load_line_says_what_the_server_offers(start, name):
    assert offered(start(name).log()) == OFFERED[name]


def test_hidden_capabilities_are_said_no(start):
    s = start("valkey-8.1", hide="acl-categories,module-configs")
    assert offered(s.log()) == EVERYTHING - {"acl-categories", "module-configs"}


def acl_categories(c, command):
    """The ACL categories COMMAND INFO gives `command` (read raw: redis-py's parser drops
    them, and ACL CAT <category> leaves module commands out on Redis 7.4)."""
    conn = c.connection_pool.get_connection()
    try:
        conn.send_command("COMMAND", "INFO", command)
        (info,) = conn.read_response()
    finally:
        c.connection_pool.release(conn)
    return {x[1:] for x in info[6]} - {"slow"}


@pytest.mark.parametrize("name,hide,expected", [
    ("redis-7.4", None, {"admin", "dangerous", "gears"}),
    ("valkey-8.1", None, {"admin", "dangerous", "gears"}),
    ("redis-7.4", "acl-category-add", {"admin", "dangerous"}),
    ("valkey-8.1", "acl-categories,acl-category-add", set()),
    ("redis-7.0", None, set()),
])
def test_acl_categories_where_offered_and_rules_by_name_everywhere(start, name, hide, expected):
    s = start(name, hide)
    c = s.client()
    assert acl_categories(c, "rg.pyexecute") == expected
    if expected:
        assert "ACL categories set on RG.* commands" in s.log()
        # -@dangerous keeps a user from arbitrary Python.
        c.execute_command("ACL", "SETUSER", "u", "on", "nopass", "+@all", "-@dangerous", "~*")
    else:
        assert "puts module commands in no ACL category" in s.log()
        c.execute_command("ACL", "SETUSER", "u", "on", "nopass", "+@all", "-rg.pyexecute", "~*")
    u = redis.Redis(port=s.port, username="u", password="x", decode_responses=True)
    with pytest.raises(redis.exceptions.NoPermissionError):
        u.execute_command("RG.PYEXECUTE", "GB().run()")
    # A rule by name works on every server, with categories or without.
    c.execute_command("ACL", "SETUSER", "v", "on", "nopass", "+@all", "-rg.pyexecute", "~*")
    v = redis.Redis(port=s.port, username="v", password="x", decode_responses=True)
    with pytest.raises(redis.exceptions.NoPermissionError):
        v.execute_command("RG.PYEXECUTE", "GB().run()")


@pytest.mark.parametrize("name,hide", [("redis-7.0", None), ("redis-7.4", None),
                                       ("redis-7.4", "module-configs")])
def test_module_configs_where_offered_and_rg_configset_everywhere(start, name, hide):
    s = start(name, hide, module_args=["ExecutionThreads", "2"])
    c = s.client()
    assert c.execute_command("RG.CONFIGSET", "MaxExecutions", "77") == ["OK"]
    assert c.execute_command("RG.CONFIGGET", "MaxExecutions") == [77]
    if hide:
        assert "this server has no module configuration" in s.log()
        assert c.config_get("rg.*") == {}
        return
    assert c.config_get("rg.maxexecutions") == {"rg.maxexecutions": "77"}
    c.config_set("rg.maxexecutions", "88")
    assert c.execute_command("RG.CONFIGGET", "MaxExecutions") == [88]
    assert c.config_get("rg.executionthreads") == {"rg.executionthreads": "2"}


@pytest.mark.parametrize("hide", [None, "cluster-api"])
def test_the_node_id_with_the_cluster_api_or_cluster_myid(hide):
    env = {"GEARS_TEST_WITHOUT": hide} if hide else None
    c = Cluster(masters=3, env=env).start()
    try:
        for node in c.masters:
            assert ("cluster-api" not in offered(node.log())) == bool(hide)
            client = node.client()
            eid = client.execute_command("RG.PYEXECUTE", "GB().run()", "UNBLOCKING")
            assert eid.startswith(client.execute_command("CLUSTER", "MYID") + "-"), eid
        reply = c.masters[0].client().execute_command(
            "RG.PYEXECUTE", "GB('ShardsIDReader').run()")
        assert sorted(reply[0]) == sorted(c.ids.values()), reply
        alive, logs = c.alive(), c.logs()
    finally:
        c.stop()
    assert alive, logs
