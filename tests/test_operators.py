"""What an operator sees of the module without RG.* commands: INFO rg, MODULE LIST's
version, COMMAND DOCS, its settings as Redis configuration (rg.*), and the lines it writes
in Redis's log (a load banner; failed registrations,
guest traps, guest uploads and configuration changes, each kind at most once per 10 s)."""
import hashlib
import json
import re
import subprocess

import pytest
import redis

from conftest import (MODULE, REDIS_CLI, REDIS_SERVER, ROOT, free_port, guest_bytes, pairs,
                      register_id, upload, wait_until, wasmrun)


def cargo_version():
    with open(f"{ROOT}/module/Cargo.toml") as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def info(c):
    return c.execute_command("INFO", "rg")


def matching(text, pattern):
    return [line for line in text.splitlines() if re.search(pattern, line)]


def log_lines(server, pattern):
    return matching(server.log(), pattern)


def log_lines_of(path, pattern):
    return matching(path.read_text(), pattern)


def test_module_list_and_the_load_line_say_the_version(fresh_server):
    s = fresh_server()
    c = s.client()
    version = cargo_version()
    major, minor, patch = (int(p) for p in version.split("."))
    mod = pairs(next(m for m in c.execute_command("MODULE", "LIST")
                     if pairs(m)["name"] == "rg"))
    assert mod["ver"] == major * 10000 + minor * 100 + patch
    banner = log_lines(s, r"<rg> gears .* loaded:")
    assert len(banner) == 1, banner
    python = info(c)["rg_python"]
    assert re.fullmatch(r"3\.\d+\.\d+", python), python
    assert f"gears {version} loaded: Python {python}" in banner[0]
    assert info(c)["rg_version"] == version


def test_info_figures_move_as_jobs_and_events_run(fresh_server):
    s = fresh_server()
    c = s.client()
    before = info(c)
    assert before["rg_executions_running"] == 0
    assert before["rg_registrations"] == 0 and before["rg_wasm_guests"] == 0

    c.set("k1", 1)
    assert c.execute_command("RG.PYEXECUTE", "GB().run()")[1] == []
    reply = c.execute_command("RG.PYEXECUTE", "GB().map(lambda x: 1 / 0).run()")
    assert reply[1], reply
    after = info(c)
    assert after["rg_executions_created"] == before["rg_executions_created"] + 2
    assert after["rg_executions_done"] == before["rg_executions_done"] + 1
    assert after["rg_executions_failed"] == before["rg_executions_failed"] + 1
    assert after["rg_executions_running"] == 0

    rid = register_id(c, "GB().foreach(lambda x: 1 / 0 if x['key'].endswith('x') else None)"
                         ".register(prefix='ev:*')")
    for key in ("ev:1", "ev:2", "ev:x"):
        c.set(key, 1)
    wait_until(lambda: info(c)["rg_registrations_succeeded"]
               + info(c)["rg_registrations_failed"] == 3, what="3 events run")
    now = info(c)
    assert now["rg_registrations"] == 1
    assert now["rg_registrations_triggered"] == 3
    assert now["rg_registrations_failed"] == 1
    assert now["rg_events_pending"] == 0
    line = now[f"rg_registration_{rid}"]
    assert line.pop("owner").startswith("session:"), line
    assert line == {
        "reader": "KeysReader", "mode": "async", "triggered": 3, "succeeded": 2,
        "failed": 1, "aborted": 0, "paused": 0}
    assert now["rg_python_allocated_bytes"] > 0

    upload(c, "all_keys")
    assert info(c)["rg_wasm_guests"] == 1
    assert info(c)["rg_registrations"] == 2
    owners = {v["owner"] for k, v in info(c).items() if k.startswith("rg_registration_")}
    assert "guest:all_keys" in owners, owners
    assert s.alive()


def test_a_failing_registration_writes_one_log_line(fresh_server):
    s = fresh_server()
    c = s.client()
    rid = register_id(c, "def boom(x):\n"
                         "    raise ValueError('no good: ' + x['key'])\n"
                         "GB().foreach(boom).register(prefix='bad:*')")
    for i in range(50):
        c.set(f"bad:{i}", i)
    wait_until(lambda: info(c)["rg_registrations_failed"] == 50, what="50 failures")
    lines = log_lines(s, f"registration {rid} ")
    assert len(lines) == 1, lines
    assert "(KeysReader) failed:" in lines[0] and "no good: bad:" in lines[0], lines


def test_guest_uploads_traps_and_config_changes_are_logged(fresh_server):
    s = fresh_server()
    c = s.client()
    c.set("one", 1)  # the faults guest's jobs fail on a record
    upload(c, "faults")
    sha = hashlib.sha256(guest_bytes("faults")).hexdigest()
    installed = log_lines(s, r"guest faults installed")
    assert len(installed) == 1 and f"sha256 {sha}" in installed[0], installed
    for _ in range(5):
        assert "out of bounds" in wasmrun(c, "faults", "oob")[1][0]
    traps = log_lines(s, r"guest faults trapped")
    assert len(traps) == 1 and "out of bounds" in traps[0], traps

    assert c.execute_command("RG.CONFIGSET", "MaxExecutions", "500") == ["OK"]
    assert len(log_lines(s, r"RG.CONFIGSET MaxExecutions 500")) == 1

    c.execute_command("RG.WASMDELETE", "faults")
    assert len(log_lines(s, r"guest faults deleted")) == 1
    assert s.alive()


def command_docs(server, command):
    out = subprocess.run([REDIS_CLI, "-p", str(server.port), "--json", "COMMAND", "DOCS",
                          command], capture_output=True, text=True, check=True).stdout
    docs = json.loads(out)
    return docs.get(command.lower())


def test_command_docs_give_summaries_and_arguments(server):
    docs = command_docs(server, "RG.PYEXECUTE")
    assert docs["module"] == "rg" and "Python" in docs["summary"], docs
    args = {a["name"]: a for a in docs["arguments"]}
    assert args["code"]["type"] == "string" and "flags" not in args["code"]
    # Valkey adds a display_text of its own (the name).
    unblocking = {k: v for k, v in args["unblocking"].items() if k != "display_text"}
    assert unblocking == {"name": "unblocking", "type": "pure-token",
                          "token": "UNBLOCKING", "flags": ["optional"]}
    assert args["requirement"]["token"] == "REQUIREMENTS"
    assert args["requirement"]["flags"] == ["optional", "multiple"]
    for internal in ("RG.INNERREGISTER", "RG.INNERWASM", "RG.HELLO", "RG.INNERMSG",
                     "RG.INNERHOOK"):
        assert command_docs(server, internal)["summary"].startswith("Internal: "), internal
    # The docs leave the commands' own checks alone: a missing argument is still their error.
    c = server.client()
    with pytest.raises(redis.ResponseError) as e:
        c.execute_command("RG.WASMDELETE")
    assert "wrong number of arguments" in str(e.value).lower() or "arity" in str(e.value).lower()


class ConfServer:
    """redis-server started from a redis.conf (CONFIG REWRITE needs one), restartable."""

    def __init__(self, tmp_path, *lines):
        self.port = free_port()
        self.conf = tmp_path / "redis.conf"
        self.logfile = tmp_path / "redis.log"
        self.conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {tmp_path}",
            f"logfile {self.logfile}", 'save ""', "appendonly no",
            f"loadmodule {MODULE}", *lines]) + "\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = redis.Redis(port=self.port, decode_responses=True)

        def up():
            assert self.proc.poll() is None, self.logfile.read_text()[-2000:]
            try:
                return c.ping()
            except redis.exceptions.ConnectionError:
                return False
        wait_until(up, timeout=20, what="redis-server from its redis.conf")
        return c

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_settings_are_redis_configuration_kept_by_config_rewrite(tmp_path):
    s = ConfServer(tmp_path, "rg.maxexecutions 321")
    c = s.start()
    try:
        assert c.config_get("rg.maxexecutions") == {"rg.maxexecutions": "321"}
        assert c.execute_command("RG.CONFIGGET", "MaxExecutions") == [321]
        assert c.config_set("rg.batchsize", 100)
        assert c.execute_command("RG.CONFIGGET", "BatchSize") == [100]
        # RG.CONFIGSET and CONFIG see one value.
        assert c.execute_command("RG.CONFIGSET", "LockSliceMicros", "700") == ["OK"]
        assert c.config_get("rg.lockslicemicros") == {"rg.lockslicemicros": "700"}
        # The same bounds and load-only entries as RG.CONFIGSET.
        with pytest.raises(redis.ResponseError):
            c.config_set("rg.batchsize", 0)
        with pytest.raises(redis.ResponseError):
            c.config_set("rg.executionthreads", 5)
        assert c.execute_command("RG.CONFIGGET", "BatchSize") == [100]
        assert len(log_lines_of(s.logfile, r"CONFIG SET rg.batchsize 100")) == 1
        assert c.config_rewrite()
    finally:
        s.stop()
    assert "rg.batchsize 100" in s.conf.read_text()
    c = s.start()
    try:
        assert c.execute_command("RG.CONFIGGET", "BatchSize", "LockSliceMicros",
                                 "MaxExecutions") == [100, 700, 321]
    finally:
        s.stop()


def test_a_load_argument_gives_way_to_redis_conf(tmp_path):
    s = ConfServer(tmp_path, "rg.executionthreads 2")
    s.conf.write_text(s.conf.read_text().replace(
        f"loadmodule {MODULE}", f"loadmodule {MODULE} ExecutionThreads 4 BatchSize 64"))
    c = s.start()
    try:
        assert c.execute_command("RG.CONFIGGET", "ExecutionThreads", "BatchSize") == [2, 64]
        assert c.config_get("rg.executionthreads")["rg.executionthreads"] == "2"
    finally:
        s.stop()
