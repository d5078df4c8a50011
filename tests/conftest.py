"""Fixtures that start real redis-server processes with the module loaded.

Every server gets a free port and a temporary directory, and is shut down after the test
(module or function scope). Cluster starts several of them as a Redis Cluster (the
cluster3 and cluster3r fixtures). The module path comes from GEARS_MODULE (the Makefile sets it)
or defaults to the release build of this checkout.
"""
import ast
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import redis.cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.environ.get(
    "GEARS_MODULE", os.path.join(ROOT, "target", "release", "libredisgears_rs.so")
)
# Guests built by `make build` (cargo build --release --target wasm32-wasip2).
GUESTS = os.environ.get(
    "GEARS_GUESTS", os.path.join(ROOT, "target", "wasm32-wasip2", "release")
)
REDIS_SERVER = os.environ.get("REDIS_SERVER", shutil.which("redis-server") or "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("REDIS_CLI", shutil.which("redis-cli") or "/usr/bin/redis-cli")
# Environment of every server of a run, as `NAME=value` words: e.g.
# GEARS_SERVER_ENV=GEARS_TEST_WITHOUT=post-notification-jobs runs a suite on a server's
# fallbacks (the module reads GEARS_TEST_WITHOUT at load). A test's own env= adds to it.
SERVER_ENV = dict(
    word.split("=", 1) for word in os.environ.get("GEARS_SERVER_ENV", "").split() if "=" in word
)


# The servers the module is tested on (docs/servers.md), by name: Debian's Redis 7.0, and
# Redis 7.4.1 and Valkey 8.1 that `make test` fetches into target/servers.
SERVERS = {
    "redis-7.0": shutil.which("redis-server") or "/usr/bin/redis-server",
    "redis-7.4": os.environ.get(
        "REDIS74_SERVER", os.path.join(ROOT, "target", "servers", "redis-7.4", "redis-server")),
    "valkey-8.1": os.environ.get(
        "VALKEY_SERVER", os.path.join(ROOT, "target", "servers", "valkey-server")),
}


def server_binary(name):
    """The binary of one of SERVERS; the test fails when it is missing."""
    path = SERVERS[name]
    if not (path and os.access(path, os.X_OK)):
        pytest.fail(f"no {name} binary at {path!r} (make test fetches it)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def index_reachable():
    """Whether the package index (pypi.org) answers from this machine."""
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll predicate() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """One redis-server process with the module loaded."""

    def __init__(self, module_args=(), extra_args=(), load_module=True, binary=None, env=None,
                 port=None, dir=None):
        self.binary = binary or REDIS_SERVER
        # Extra environment of the server process (e.g. GEARS_TEST_PANIC for fault tests).
        env = dict(SERVER_ENV, **(env or {}))
        self.env = dict(os.environ, **env) if env else None
        # A cluster node needs a port whose bus port (+10000) is free too: Cluster picks it.
        self.port = port or free_port()
        self.dir = dir or tempfile.mkdtemp(prefix="gears-test-")
        os.makedirs(self.dir, exist_ok=True)
        self.module_args = list(module_args)
        self.extra_args = list(extra_args)
        self.load_module = load_module
        self.proc = None
        self.logfile = os.path.join(self.dir, "redis.log")

    def start(self):
        cmd = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.dir,
            "--logfile", self.logfile,
            "--save", "",
            "--appendonly", "no",
        ]
        if self.load_module:
            cmd += ["--loadmodule", MODULE] + [str(a) for a in self.module_args]
        cmd += [str(a) for a in self.extra_args]
        return self.launch(cmd)

    def launch(self, cmd, wait=True):
        """Starts `cmd` (a redis-server command line) and, with `wait`, polls until it
        answers PING."""
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env
        )
        if not wait:
            return self
        client = redis.Redis(port=self.port, decode_responses=True)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited at start:\n" + self.log())
            try:
                return client.ping()
            except redis.exceptions.ConnectionError:
                return False
            except redis.exceptions.BusyLoadingError:
                return False

        wait_until(up, timeout=20, what="redis-server to accept connections")
        return self

    def client(self, **kwargs):
        kwargs.setdefault("decode_responses", True)
        return redis.Redis(port=self.port, **kwargs)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.logfile) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    """A server shared by the tests of one file (flush between tests with the `r` fixture)."""
    s = RedisServer().start()
    yield s
    alive = s.alive()
    log = s.log()
    s.stop()
    assert alive, "redis-server died during the tests:\n" + log[-5000:]


@pytest.fixture
def r(server):
    """A client of the shared server, with an empty keyspace; the registrations a test
    made are removed after it."""
    c = server.client()
    c.flushall()
    yield c
    if server.alive():
        unregister_all(c)
        assert c.execute_command("RG.DUMPREGISTRATIONS") == []
        for guest in c.execute_command("RG.WASMLIST"):
            c.execute_command("RG.WASMDELETE", pairs(guest)["name"])
    c.close()


@pytest.fixture
def fresh_server():
    """A server of this test alone (for tests that change configuration or kill things)."""
    servers = []

    def make(**kwargs):
        s = RedisServer(**kwargs).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


# Redis Cluster: 16384 hash slots; a node's cluster bus listens on its port + 10000.
CLUSTER_SLOTS = 16384
CLUSTER_BUS_OFFSET = 10000
# Node ports are drawn here: with their bus ports they stay under 32768, below Linux's
# ephemeral range, so no outgoing connection (a client, another node's bus link) can take
# one between the check in cluster_port() and the server's bind.
CLUSTER_PORTS = range(12000, 32768 - CLUSTER_BUS_OFFSET)


def cluster_port(taken):
    """A loopback port p not in `taken` with p and p + 10000 both free; adds both to taken."""
    for _ in range(1000):
        port = random.choice(CLUSTER_PORTS)
        pair = (port, port + CLUSTER_BUS_OFFSET)
        if taken.intersection(pair):
            continue
        try:
            for p in pair:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        taken.update(pair)
        return port
    raise AssertionError("no free port pair for a cluster node")


class Cluster:
    """A Redis Cluster of RedisServer nodes on loopback, the module loaded on each.

    `masters` masters own the slots in even contiguous ranges (`ranges[i]` is masters[i]'s);
    with_replicas gives each master one replica: replicas[i] replicates masters[i].
    module_args, extra_args and env go to every node; master_module_args {i: args} replaces
    module_args for masters[i] (a shard configured apart). Every node's files are under
    one temporary directory, removed by stop().
    """

    def __init__(self, masters=3, with_replicas=False, module_args=(), extra_args=(), env=None,
                 master_module_args=None):
        self.dir = tempfile.mkdtemp(prefix="gears-cluster-")
        self.ranges = [
            (i * CLUSTER_SLOTS // masters, (i + 1) * CLUSTER_SLOTS // masters - 1)
            for i in range(masters)
        ]
        taken = set()

        def node(args_of_module=module_args):
            port = cluster_port(taken)
            node_dir = os.path.join(self.dir, str(port))
            args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(node_dir, "nodes.conf"),
                # Failure detection in 2 s, not 15: tests that stop a node wait less.
                "--cluster-node-timeout", "2000",
                # A replica's first sync starts at once instead of after the default 5 s
                # wait for more replicas.
                "--repl-diskless-sync-delay", "0",
            ] + list(extra_args)
            return RedisServer(module_args=args_of_module, extra_args=args, env=env,
                               port=port, dir=node_dir)

        apart = master_module_args or {}
        self._node = node
        self.masters = [node(apart.get(i, module_args)) for i in range(masters)]
        self.replicas = [node() for _ in range(masters)] if with_replicas else []
        self.ids = {}  # port -> cluster node id
        self._admin = {}  # port -> a plain client of that node, for the set-up and polls
        self._clients = []  # the RedisCluster clients handed out, closed by stop()

    @property
    def nodes(self):
        return self.masters + self.replicas

    def start(self):
        """Start every node, form the cluster and wait until it is ready; on failure,
        stop everything and raise with the nodes' logs."""
        try:
            # All at once: each node's module load overlaps the others', and so does the
            # 2 s a new cluster master waits before it reports the cluster ok.
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(RedisServer.start, self.nodes))
            for n in self.nodes:
                self._admin[n.port] = n.client()
                self.ids[n.port] = self._admin[n.port].execute_command("CLUSTER", "MYID")
            self._form()
        except Exception as e:
            logs = self.logs()
            self.stop()
            raise AssertionError(f"the cluster did not start: {e}\n{logs}") from e
        except BaseException:  # Ctrl-C: still leave no server behind
            self.stop()
            raise
        return self

    def _form(self):
        for i, (m, (lo, hi)) in enumerate(zip(self.masters, self.ranges)):
            admin = self._admin[m.port]
            admin.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            # Distinct config epochs before the nodes meet, as redis-cli --cluster create
            # does; otherwise every master starts at 0 and the collisions are resolved one
            # bump at a time.
            admin.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        first = self._admin[self.masters[0].port]
        for n in self.nodes[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", n.port)
        for r, m in zip(self.replicas, self.masters):
            # REPLICATE refuses a master the replica has not yet learned of by gossip.
            wait_until(lambda: self._knows(r, self.ids[m.port]), timeout=20,
                       what=f"node {r.port} to learn of master {m.port}")
            self._admin[r.port].execute_command("CLUSTER", "REPLICATE", self.ids[m.port])
        wait_until(self._ready, timeout=30, interval=0.05, what="the cluster to be ready")

    def _nodes_view(self, n):
        """CLUSTER NODES of node n as {id: (flags, master id, link state)}."""
        view = {}
        for line in self._admin[n.port].execute_command("CLUSTER", "NODES").splitlines():
            f = line.split()
            view[f[0]] = (set(f[2].split(",")), f[3], f[7])
        return view

    def _knows(self, n, node_id):
        entry = self._nodes_view(n).get(node_id)
        return entry is not None and "handshake" not in entry[0] and "noaddr" not in entry[0]

    def _ready(self):
        """Every node: cluster_state ok, knows every node with a live link and its right
        role; every replica: its replication link is up."""
        master_of = {self.ids[r.port]: self.ids[m.port]
                     for r, m in zip(self.replicas, self.masters)}
        for n in self.nodes:
            if not n.alive():
                raise AssertionError(f"node {n.port} exited")
            if "cluster_state:ok" not in self._admin[n.port].execute_command("CLUSTER", "INFO"):
                return False
            view = self._nodes_view(n)
            if set(view) != set(self.ids.values()):
                return False
            for node_id, (flags, master, link) in view.items():
                if flags & {"handshake", "noaddr", "fail?", "fail"} or link != "connected":
                    return False
                if node_id in master_of and ("slave" not in flags
                                             or master != master_of[node_id]):
                    return False
        return all(
            self._admin[r.port].info("replication").get("master_link_status") == "up"
            for r in self.replicas
        )

    def client(self, **kwargs):
        """A RedisCluster client (it learns the topology from the first master)."""
        kwargs.setdefault("decode_responses", True)
        c = redis.cluster.RedisCluster(host="127.0.0.1", port=self.masters[0].port, **kwargs)
        self._clients.append(c)
        return c

    def node_of(self, key):
        """The master that owns key's slot now (as a live master's CLUSTER SLOTS says)."""
        live = next(n for n in self.masters if n.alive())
        admin = self._admin[live.port]
        slot = admin.execute_command("CLUSTER", "KEYSLOT", key)
        for lo, hi, master, *_ in admin.execute_command("CLUSTER", "SLOTS"):
            if lo <= slot <= hi:
                return next(n for n in self.nodes if n.port == master[1])
        raise AssertionError(f"no master owns slot {slot}")

    def add_master(self):
        """Starts one more node, has the cluster meet it, and waits until every node knows
        it: a master that owns no slots yet."""
        n = self._node()
        n.start()
        self._admin[n.port] = n.client()
        self.ids[n.port] = self._admin[n.port].execute_command("CLUSTER", "MYID")
        self.masters.append(n)
        self._admin[self.masters[0].port].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port)
        wait_until(lambda: all(self._knows(m, self.ids[n.port]) for m in self.nodes)
                   and all(self._knows(n, self.ids[m.port]) for m in self.nodes),
                   timeout=20, what=f"every node to know node {n.port}")
        return n

    def reshard(self, source, target, slots):
        """`redis-cli --cluster reshard`: moves `slots` slots (and their keys) from master
        `source` to master `target`."""
        out = subprocess.run(
            [REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{source.port}",
             "--cluster-from", self.ids[source.port], "--cluster-to", self.ids[target.port],
             "--cluster-slots", str(slots), "--cluster-yes"],
            capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out.stdout

    def alive(self):
        return all(n.alive() for n in self.nodes)

    def linked(self):
        """Every live master's module knows every master's incarnation in RG.INFOCLUSTER:
        its shard links said hello."""
        def up(m):
            reply = self._admin[m.port].execute_command("RG.INFOCLUSTER")
            return all(pairs(s)["runid"] for s in reply[4])
        return all(up(m) for m in self.masters if m.alive())

    def logs(self, tail=3000):
        """The end of every node's log, each under a header naming it, for failure messages."""
        out = []
        for role, group in (("master", self.masters), ("replica", self.replicas)):
            for n in group:
                state = "running" if n.alive() else (
                    f"exited {n.proc.returncode}" if n.proc else "not started")
                out.append(f"--- {role} {n.port} ({state}) ---\n{n.log()[-tail:]}")
        return "\n".join(out)

    def stop(self):
        """Stop every node (safe to call twice) and remove the directory."""
        for c in self._clients + list(self._admin.values()):
            c.close()
        self._clients, self._admin = [], {}
        # Replicas first: a master shutting down waits for its replicas to catch up.
        for n in self.replicas + self.masters:
            n.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _cluster_fixture(**kwargs):
    c = Cluster(**kwargs).start()
    try:
        yield c
        alive, logs = c.alive(), c.logs()
    finally:
        c.stop()
    assert alive, "a cluster node died during the test:\n" + logs


@pytest.fixture
def cluster3():
    """A fresh cluster of 3 masters, stopped after the test."""
    yield from _cluster_fixture(masters=3)


@pytest.fixture
def cluster3r():
    """A fresh cluster of 3 masters with one replica each, stopped after the test."""
    yield from _cluster_fixture(masters=3, with_replicas=True)


def shard_tags(c):
    """{master port: the hashtag() that master gives} of a Cluster."""
    reply = c.masters[0].client().execute_command(
        "RG.PYEXECUTE", "GB('ShardsIDReader').map(lambda x: hashtag()).run()")
    assert reply[1] == [], reply
    return {c.node_of("x{%s}" % tag).port: tag for tag in reply[0]}


def pyexecute(client, code, *args):
    """RG.PYEXECUTE code [args...] with the reply as redis-py gives it."""
    return client.execute_command("RG.PYEXECUTE", code, *args)


def pairs(flat):
    """A flat [k1, v1, k2, v2...] reply as a dict."""
    assert isinstance(flat, list) and len(flat) % 2 == 0, flat
    return dict(zip(flat[0::2], flat[1::2]))


def unregister_all(client):
    """RG.UNREGISTER every registration."""
    for entry in client.execute_command("RG.DUMPREGISTRATIONS"):
        client.execute_command("RG.UNREGISTER", pairs(entry)["id"])


def recipe(name):
    """The source of a Python recipe under recipes/python, as users run it."""
    with open(os.path.join(ROOT, "recipes", "python", name)) as f:
        return f.read()


def python_groupby_counts(results):
    """A Python recipe's groupby results (each the str() of {'key': k, 'value': n}) as a
    Counter."""
    return Counter({d["key"]: d["value"] for d in map(ast.literal_eval, results)})


def wasm_groupby_counts(results):
    """A guest's groupby results (each a flat [key, k, value, v] array) as a Counter."""
    out = Counter()
    for flat in results:
        d = dict(zip(flat[0::2], flat[1::2]))
        assert set(d) == {"key", "value"}, flat
        out[d["key"]] += int(d["value"])
    return out


def dump_regs(client):
    """RG.DUMPREGISTRATIONS as {id: {..., 'data': RegistrationData, 'args': reader args}}."""
    out = {}
    for entry in client.execute_command("RG.DUMPREGISTRATIONS"):
        d = pairs(entry)
        d["data"] = pairs(d["RegistrationData"])
        d["args"] = pairs(d["data"]["args"])
        out[d["id"]] = d
    return out


def register_id(client, code, *args):
    """RG.PYEXECUTE a script whose last line is an expression ending in register(...);
    return that registration's id (passed through a key, which is then deleted)."""
    key = "__rid__"
    lines = code.rstrip("\n").split("\n")
    lines[-1] = "rid = " + lines[-1]
    code = "\n".join(lines) + f"\nexecute('set', '{key}', rid)\n"
    assert pyexecute(client, code, *args) == "OK"
    rid = client.get(key)
    client.delete(key)
    assert rid is not None, "register() returned nothing"
    return rid


def run(client, code, *args):
    """RG.PYEXECUTE a script with a run(); return (results, errors)."""
    reply = pyexecute(client, code, *args)
    assert isinstance(reply, list) and len(reply) == 2, reply
    results, errors = reply
    assert isinstance(results, list) and isinstance(errors, list), reply
    return results, errors


def run_ok(client, code, *args):
    """As run(), asserting there were no errors; return the results."""
    results, errors = run(client, code, *args)
    assert errors == [], errors
    return results


def guest_bytes(name):
    """The component `name`.wasm built by `make build`."""
    with open(os.path.join(GUESTS, name + ".wasm"), "rb") as f:
        return f.read()


def upload(client, name, artifact=None, *options):
    """RG.WASMUPLOAD name [options...] <bytes of artifact.wasm (default: name)>."""
    return client.execute_command("RG.WASMUPLOAD", name, *options,
                                  guest_bytes(artifact or name))


def wasmrun(client, guest, job, *args):
    """RG.WASMRUN guest job args...; return (results, errors)."""
    reply = client.execute_command("RG.WASMRUN", guest, job, *args)
    assert isinstance(reply, list) and len(reply) == 2, reply
    return reply[0], reply[1]


def wasmrun_ok(client, guest, job, *args):
    results, errors = wasmrun(client, guest, job, *args)
    assert errors == [], errors
    return results


def guest_regs(client, name):
    """The registration ids RG.WASMLIST shows for guest `name`."""
    for g in client.execute_command("RG.WASMLIST"):
        d = pairs(g)
        if d["name"] == name:
            return d["registrations"]
    return None


def in_background(fn, *args):
    """Run fn(*args) on a thread; returns a getter that joins it and returns/raises."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args)
        except Exception as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()

    def result(timeout=15):
        th.join(timeout)
        assert not th.is_alive(), "background call did not return"
        if "error" in box:
            raise box["error"]
        return box["value"]
    return result
