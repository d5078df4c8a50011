"""Redis's crash report with the guests' signals-based traps on (module/src/wasm/crash.rs).

wasmtime handles SIGSEGV, SIGILL and SIGFPE to turn a guest's out-of-bounds access,
`unreachable` or division by zero into a trap. A crash that is not a guest's must still
reach Redis's own handler as if the module were not there: exactly one crash report,
complete, whose stack starts at the signal (not in a handler of the module's, which would
also lose Redis's SA_RESETHAND: a fault inside the report then entered it again), and
the process ends with the signal.

Redis's fast memory test (part of the report) is off here: it writes over every
anonymous mapping while the module's threads still run, and now and then faults on one
that a thread changes meanwhile, which cuts the report short with or without guests."""
import os
import re
import signal

import pytest
import redis

from conftest import MODULE, RedisServer, upload, wait_until, wasmrun, wasmrun_ok

REPORTING = ["--crash-memcheck-enabled", "no"]


def crash_and_wait(s, client, *command):
    try:
        client.execute_command(*command)
    except redis.exceptions.ConnectionError:
        pass
    else:
        raise AssertionError(f"{command} answered instead of crashing the server")
    wait_until(lambda: not s.alive(), timeout=30, what="redis-server to end")
    return s.proc.returncode


def first_frame(log):
    """The innermost frame of the crashed thread's stack in the report: after
    "Backtrace:" (Redis 7.0), or after the thread's line marked " *" (7.2 and later)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Backtrace:" or re.match(r"^\d+ .* \*$", line.strip()):
            return lines[i + 1] if i + 1 < len(lines) else ""
    raise AssertionError("no stack trace in the report:\n" + log[-3000:])


def assert_one_report(log, returncode):
    # Redis writes "=== REDIS BUG REPORT START ...", Valkey "=== VALKEY BUG REPORT START".
    assert log.count("BUG REPORT START") == 1, log[-3000:]
    assert log.count("crashed by signal") == 1, log[-3000:]
    assert log.count("BUG REPORT END") == 1, log[-3000:]
    # Redis's handler was the kernel's: the stack starts at the signal's return to libc.
    frame = first_frame(log)
    assert os.path.basename(MODULE) not in frame and "libc" in frame, frame
    assert returncode == -11, returncode  # SIGSEGV, as without the module


def guests_work_and_trap(c):
    upload(c, "genres")
    upload(c, "faults")
    c.hset("movie:1", "genres", "Drama,Comedy")
    assert len(wasmrun_ok(c, "genres", "count", "movie:*")) == 2
    # Each trap, caught by a signal handler now, is still its execution's error.
    for job, message in [("oob", "out of bounds"), ("trap", "trapped"), ("recurse", "stack")]:
        results, errors = wasmrun(c, "faults", job)
        assert results == [] and len(errors) == 1 and message in errors[0], (job, errors)
    assert c.ping()


@pytest.fixture
def after_guests():
    """A server that DEBUG SEGFAULT can crash, once guests have run and trapped."""
    s = RedisServer(extra_args=["--enable-debug-command", "yes"] + REPORTING).start()
    try:
        c = s.client()
        guests_work_and_trap(c)
        yield s, c
    finally:
        s.stop()


def test_a_crash_after_guest_calls_writes_one_report(after_guests):
    s, c = after_guests
    code = crash_and_wait(s, c, "DEBUG", "SEGFAULT")
    assert_one_report(s.log(), code)


def test_a_crash_inside_a_guests_host_call_writes_one_report():
    # The fault comes from the module's code while a guest is on the stack of a worker:
    # wasmtime sees a guest running and must still hand the signal back.
    s = RedisServer(env={"GEARS_TEST_PANIC": "host-call-crash"}, extra_args=REPORTING).start()
    try:
        c = s.client()
        upload(c, "genres")
        c.hset("movie:1", "genres", "Drama")
        code = crash_and_wait(s, c, "RG.WASMRUN", "genres", "count", "movie:*")
        log = s.log()
        assert_one_report(log, code)
        assert "STACK TRACE" in log, log[-3000:]
    finally:
        s.stop()


def test_a_segv_sent_by_kill_still_says_who_sent_it():
    # No instruction to run again: the signal is sent again, with its sender, to Redis.
    s = RedisServer(extra_args=REPORTING).start()
    try:
        guests_work_and_trap(s.client())
        os.kill(s.proc.pid, signal.SIGSEGV)
        wait_until(lambda: not s.alive(), timeout=30, what="redis-server to end")
        log = s.log()
        assert log.count("BUG REPORT START") == 1 and log.count("crashed by signal") == 1
        assert f"Killed by PID: {os.getpid()}" in log, log[-3000:]
        assert s.proc.returncode == -11
    finally:
        s.stop()


def test_traps_and_reports_survive_crash_log_enabled_changes(after_guests):
    # CONFIG SET crash-log-enabled makes Redis install its handlers again, over the
    # engine's: a guest's trap must stay a trap, and a crash Redis's.
    s, c = after_guests
    for value in ["no", "yes", "no", "yes"]:
        c.config_set("crash-log-enabled", value)
        results, errors = wasmrun(c, "faults", "oob")
        assert results == [] and "out of bounds" in errors[0], errors
    assert c.ping()
    code = crash_and_wait(s, c, "DEBUG", "SEGFAULT")
    assert_one_report(s.log(), code)


def test_no_report_when_crash_log_is_off(after_guests):
    s, c = after_guests
    c.config_set("crash-log-enabled", "no")
    assert "out of bounds" in wasmrun(c, "faults", "oob")[1][0]
    code = crash_and_wait(s, c, "DEBUG", "SEGFAULT")
    assert "BUG REPORT START" not in s.log()
    assert code == -11, code
