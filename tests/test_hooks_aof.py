"""Hooks never touch AOF loading: the AOF holds the commands the hook really ran, and
replaying them at start-up must not run the hook again."""
from conftest import RedisServer, pyexecute, wait_until

DOUBLER = (
    "GB('CommandReader')"
    ".map(lambda x: call_next(x[1], str(int(x[2]) * 2)))"
    ".register(hook='incrby', convertToStr=False)"
)


def restart(s):
    s.proc.terminate()
    s.proc.wait()
    s.start()


def test_aof_replay_passes_hooks_untouched():
    s = RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    try:
        c = s.client()
        assert pyexecute(c, DOUBLER) == "OK"
        assert c.incrby("k", 5) == 10
        assert c.incrby("k", 1) == 12
        restart(s)
        c = s.client()
        # the registration is back, and loading replayed what ran, not the hook
        wait_until(lambda: len(c.execute_command("RG.DUMPREGISTRATIONS")) == 1, what="hook restored")
        assert c.get("k") == "12"
        # and the hook still works after the load
        assert c.incrby("k", 2) == 16
    finally:
        s.stop()
