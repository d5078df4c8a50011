import pytest

import _gears
import gears
from gears import (atomic, configGet, execute, gearsConfigGet, gearsFuture, hashtag,
                   isAsyncAllow, log)


def test_execute_passes_through(fake):
    fake.state['execute'] = lambda cmd, *args: [cmd] + list(args)
    assert execute('set', 'k', 1, 2.5, b'x') == ['set', 'k', 1, 2.5, b'x']
    assert fake.calls == [('execute', ('set', 'k', 1, 2.5, b'x'))]


def test_execute_error_raises(fake):
    def h(cmd, *a):
        raise _gears.GearsError('ERR unknown command')
    fake.state['execute'] = h
    with pytest.raises(_gears.GearsError, match='unknown command'):
        execute('nope')


def test_atomic_locks_and_unlocks(fake):
    with atomic():
        assert fake.state['lock_depth'] == 1
        with atomic():
            assert fake.state['lock_depth'] == 2
        execute('incr', 'a')
    assert fake.state['lock_depth'] == 0
    assert [c[0] for c in fake.calls] == ['lock', 'lock', 'unlock', 'execute', 'unlock']


def test_atomic_unlocks_on_exception(fake):
    with pytest.raises(KeyError):
        with atomic():
            raise KeyError('x')
    assert fake.state['lock_depth'] == 0
    with pytest.raises(_gears.ExecutionAborted):
        with atomic():
            raise _gears.ExecutionAborted()
    assert fake.state['lock_depth'] == 0


def test_log(fake):
    log('hello')
    log('dbg', level='debug')
    log(42, 'warning')
    assert [a for (n, a) in fake.calls if n == 'log'] == [
        ('hello', 'notice'), ('dbg', 'debug'), ('42', 'warning')]
    with pytest.raises(_gears.GearsError):
        log('x', level='loud')


def test_config(fake):
    assert configGet('BatchSize') == '512'
    assert configGet('nope') is None
    assert gearsConfigGet('nope') is None
    assert gearsConfigGet('nope', 'dflt') == 'dflt'
    assert gearsConfigGet('ExecutionThreads', 'dflt') == '3'


def test_deprecated_aliases(fake):
    assert gears.ConfigGet('batchsize') == '512'
    assert gears.GearsConfigGet('x', 1) == 1
    gears.Log('msg')
    logs = [a for (n, a) in fake.calls if n == 'log']
    assert ('msg', 'notice') in logs
    assert any(level == 'warning' and 'deprecated' in m for (m, level) in logs)


def test_hashtag():
    assert hashtag() == '{06S}'


def test_is_async_allow(fake):
    assert isAsyncAllow() is True
    fake.state['async_allowed'] = False
    assert isAsyncAllow() is False


def test_gears_future_outside_async(fake):
    f = gearsFuture()
    assert repr(f) == '<gearsFuture pending>'
    f.continueFailed('x')
    assert repr(f) == '<gearsFuture failed>'
    fake.state['async_allowed'] = False
    with pytest.raises(_gears.GearsError) as ei:
        gearsFuture()
    assert str(ei.value) == 'Future object is not allowed on sync execution'


def test_session_globals_copy():
    g = {name: getattr(gears, name) for name in gears.__all__}
    code = "GB('ShardsIDReader').map(lambda x: execute('get', x)).run()"
    exec(compile(code, '<recipe>', 'exec'), g)


def test_sleep_gives_the_lock_back_first(fake):
    import time
    fake.reset()
    time.sleep(0)
    assert ('release_lock_slice', ()) in fake.calls


def test_recursion_cap_clamps_and_logs(fake):
    import sys
    from gears import runtime
    real = getattr(sys.setrecursionlimit, '_gears_real', sys.setrecursionlimit)
    before = sys.getrecursionlimit()
    try:
        runtime._install_recursion_cap(1500)
        sys.setrecursionlimit(1200)
        assert sys.getrecursionlimit() == 1200
        assert not any(c[0] == 'log' for c in fake.calls)
        sys.setrecursionlimit(10 ** 7)
        assert sys.getrecursionlimit() == 1500
        assert any(c[0] == 'log' and 'clamped to 1500' in c[1][0] and c[1][1] == 'warning'
                   for c in fake.calls)
        with pytest.raises(TypeError):
            sys.setrecursionlimit('x')
        runtime._install_recursion_cap(1500)  # installing again wraps the real one once
        assert sys.setrecursionlimit._gears_real is real
    finally:
        sys.setrecursionlimit = real
        real(before)
