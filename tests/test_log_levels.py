"""log() behaves alike in both hosts, as RedisGears 1.2's did: debug, verbose, notice and
warning write a line (as Redis spells them: case matters); any other level is an error
with 1.2's words, and nothing is written. Python raises GearsError; a guest gets the
error back from try-log, and the contract's older log import (no error result) fails
the guest call."""
import textwrap
import uuid

import pytest

from conftest import pyexecute, upload, wait_until, wasmrun, wasmrun_ok

UNKNOWN = "Log level should be one of the following : debug,verbose,notice,warning"
# The test server logs at notice: debug and verbose lines are not in its file.
SHOWN = ["notice", "warning"]
NOT_LEVELS = ["info", "Warning", "error", ""]


def marker(what):
    return f"log-test-{what}-{uuid.uuid4().hex[:8]}"


def python_log(r, level, message):
    """log(message, level=level) in a step: 'logged', or 'Type: message' of what it raised."""
    code = textwrap.dedent(f"""
        def f(x):
            try:
                log({message!r}, level={level!r})
                return 'logged'
            except Exception as e:
                return type(e).__name__ + ': ' + str(e)
        GB('ShardsIDReader').map(f).run()
    """)
    results, errors = pyexecute(r, code)
    assert errors == [], errors
    assert len(results) == 1, results
    return results[0]


def assert_not_logged(server, r, message):
    """`message` is not in the log: a line logged after it is, and it is not."""
    sentinel = marker("sentinel")
    assert python_log(r, "notice", sentinel) == "logged"
    wait_until(lambda: sentinel in server.log(), what="the sentinel log line")
    assert message not in server.log()


@pytest.fixture
def k(r):
    upload(r, "kitchen")
    return r


@pytest.mark.parametrize("level", SHOWN)
def test_known_levels_write_a_line_in_both_hosts(k, server, level):
    from_python, from_guest = marker("py"), marker("wasm")
    assert python_log(k, level, from_python) == "logged"
    assert wasmrun_ok(k, "kitchen", "try_log", level, from_guest) == ["logged"]
    wait_until(lambda: f"GEARS: {from_python}" in server.log(), what="the recipe's line")
    wait_until(lambda: f"GEARS: {from_guest}" in server.log(), what="the guest's line")


def test_hidden_levels_are_accepted_in_both_hosts(k):
    for level in ["debug", "verbose"]:
        assert python_log(k, level, marker("py")) == "logged"
        assert wasmrun_ok(k, "kitchen", "try_log", level, marker("wasm")) == ["logged"]
        assert wasmrun_ok(k, "kitchen", "raw_log", level, marker("raw")) == ["logged"]


@pytest.mark.parametrize("level", NOT_LEVELS)
def test_unknown_level_is_an_error_in_both_hosts_and_writes_nothing(k, server, level):
    from_python, from_guest = marker("py"), marker("wasm")
    assert python_log(k, level, from_python) == f"GearsError: {UNKNOWN}"
    assert wasmrun_ok(k, "kitchen", "try_log", level, from_guest) == [f"ERR: {UNKNOWN}"]
    assert_not_logged(server, k, from_python)
    assert_not_logged(server, k, from_guest)


def test_unknown_level_uncaught_fails_the_step(k):
    code = "GB('ShardsIDReader').foreach(lambda x: log('x', level='info')).run()"
    results, errors = pyexecute(k, code)
    assert results == []
    assert len(errors) == 1 and "GearsError" in errors[0] and UNKNOWN in errors[0], errors


def test_guest_log_import_without_error_result_fails_the_call(k, server):
    message = marker("raw")
    results, errors = wasmrun(k, "kitchen", "raw_log", "info", message)
    assert results == []
    assert errors == [f"log(): {UNKNOWN}"], errors
    assert_not_logged(server, k, message)
    # The guest was dropped, not broken: the next call gets a fresh instance.
    shown = marker("raw-after")
    assert wasmrun_ok(k, "kitchen", "raw_log", "warning", shown) == ["logged"]
    wait_until(lambda: f"GEARS: {shown}" in server.log(), what="the guest's line")
