"""Fixtures that start real redis-server processes with the module loaded.

Every server gets a free port and a temporary directory, and is shut down after the test
(module or function scope). The module path comes from GEARS_MODULE (the Makefile sets it)
or defaults to the release build of this checkout.
"""
import ast
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.environ.get(
    "GEARS_MODULE", os.path.join(ROOT, "target", "release", "libredisgears_rs.so")
)
# Guests built by `make build` (cargo build --release --target wasm32-wasip2).
GUESTS = os.environ.get(
    "GEARS_GUESTS", os.path.join(ROOT, "target", "wasm32-wasip2", "release")
)
REDIS_SERVER = os.environ.get("REDIS_SERVER", shutil.which("redis-server") or "/usr/bin/redis-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env
        )
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
