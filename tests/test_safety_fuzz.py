"""A bounded fuzz of the safety contract (fixed seed, a few thousand calls): every RG.*
command with random arguments from a client, and execute() of every command of
COMMAND LIST with random arguments, from a Python step and from a guest, in sync and
async modes. Redis must neither crash nor hang: every call answers (an error is fine)
within the socket timeout, and PING answers within 100 ms at the end of each round."""
import random
import time

import pytest
import redis

from conftest import RedisServer, pyexecute, upload

SEED = 20261129
# Argument material: small numbers only (CLIENT PAUSE, DEBUG SLEEP-like arguments stay
# short), key-ish words, option words, and edge cases (empty, negative, float).
VOCAB = ["0", "1", "2", "-1", "10", "1.5", "", "k", "k2", "h", "f", "v", "*", "0-0", "$",
         "nx", "xx", "ex", "px", "get", "set", "count", "limit", "withscores", "by", "match",
         "type", "id", "\x00", "é", "rg.x", "{k}",
         ] + [  # words that would stop or crash the server if they got through the door
         "segfault", "panic", "reload", "nosave", "now", "off", "reply", "pause"]
STOP_WORDS = VOCAB[-8:]
# Commands whose effects would take the harness itself away (not Redis): making this
# server a replica of a random host, or connecting out to one.
HARNESS = {"replicaof", "slaveof", "failover", "migrate"}
GEARS = ["RG.PYEXECUTE", "RG.PYSTATS", "RG.PYDUMPSESSIONS", "RG.GETEXECUTION",
         "RG.GETRESULTS", "RG.GETRESULTSBLOCKING", "RG.DROPEXECUTION", "RG.ABORTEXECUTION",
         "RG.DUMPEXECUTIONS", "RG.CONFIGGET", "RG.CONFIGSET", "RG.DUMPREGISTRATIONS",
         "RG.UNREGISTER", "RG.INNERREGISTER", "RG.TRIGGER", "RG.INNERHOOK", "RG.TRIGGERONKEY",
         "RG.CLEARREGISTRATIONSSTATS", "RG.PAUSEREGISTRATIONS", "RG.UNPAUSEREGISTRATIONS",
         "RG.WASMUPLOAD", "RG.INNERWASM", "RG.WASMRUN", "RG.WASMLIST", "RG.WASMDELETE",
         "RG.INFOCLUSTER", "RG.REFRESHCLUSTER", "RG.HELLO", "RG.INNERMSG"]


def random_args(rng, n_max=4):
    return [rng.choice(VOCAB) for _ in range(rng.randint(0, n_max))]


@pytest.fixture
def fuzz_server():
    s = RedisServer().start()
    yield s
    alive = s.alive()
    log = s.log()
    s.stop()
    assert alive, "redis-server died during the fuzz:\n" + log[-5000:]


def client(s):
    return s.client(socket_timeout=20)


def answers(c):
    t0 = time.monotonic()
    assert c.ping()
    assert time.monotonic() - t0 < 0.1


def commands(c):
    """(name, subcommand names) of every command but HARNESS's."""
    out = []
    for name in sorted(n.lower() for n in c.command_list()):
        if name in HARNESS:
            continue
        info = c.execute_command("COMMAND", "INFO", name)[name]
        subs = [sub[0].split("|", 1)[1] for sub in info.get("subcommands") or []]
        out.append((name, subs))
    return out


def command_line(rng, name, subs):
    """`name`, a random subcommand of it if it has some, and random arguments."""
    head = [name, rng.choice(subs)] if subs else [name]
    return head + random_args(rng)


def test_gears_commands_with_random_arguments(fuzz_server):
    rng = random.Random(SEED)
    c = client(fuzz_server)
    calls = 0
    for round_ in range(40):
        for name in GEARS:
            try:
                c.execute_command(name, *random_args(rng, 5))
            except redis.ResponseError:
                pass
            calls += 1
        answers(c)
    assert calls == 40 * len(GEARS)


PY_FUZZ = """
ARGS = {args!r}
def attempt(args):
    try:
        execute(*args)
        return 'ok'
    except Exception as e:
        return 'error'
GB('ShardsIDReader').flatmap(lambda x: [attempt(a) for a in ARGS]).run(mode='{mode}')
"""


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_execute_of_every_command_from_a_python_step(fuzz_server, mode):
    rng = random.Random(SEED)
    c = client(fuzz_server)
    calls = 0
    for name, subs in commands(c):
        args = [command_line(rng, name, subs) for _ in range(3)]
        # Each word that would stop the server, first, so DEBUG SEGFAULT or SHUTDOWN NOW
        # are sure to be tried.
        args += [[name, word] + random_args(rng, 2) for word in STOP_WORDS]
        reply = pyexecute(c, PY_FUZZ.format(args=args, mode=mode))
        assert isinstance(reply, list) and len(reply[0]) == len(args), (name, reply)
        calls += len(args)
        if calls % 150 == 0:
            answers(c)
    answers(c)
    assert calls > 500


@pytest.mark.parametrize("job", ["exec", "exec_sync"])
def test_execute_of_every_command_from_a_guest(fuzz_server, job):
    rng = random.Random(SEED)
    c = client(fuzz_server)
    upload(c, "kitchen")
    calls = 0
    for name, subs in commands(c):
        for _ in range(2):
            reply = c.execute_command("RG.WASMRUN", "kitchen", job,
                                      *command_line(rng, name, subs))
            assert isinstance(reply, list) and len(reply[0]) == 1, (name, reply)
            calls += 1
        if calls % 100 == 0:
            answers(c)
    answers(c)
    assert calls > 300
