"""Installs a fake `_gears` native module (recording its calls) before `gears` is imported."""

import os
import sys
import types

import pytest

SHIM = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SHIM not in sys.path:
    sys.path.insert(0, SHIM)


class GearsError(Exception):
    pass


class ExecutionAborted(BaseException):
    pass


_LEVELS = ('debug', 'verbose', 'notice', 'warning')


def _make_fake():
    m = types.ModuleType('_gears')
    m.GearsError = GearsError
    m.ExecutionAborted = ExecutionAborted
    m.calls = []
    m.state = {}

    def reset():
        del m.calls[:]
        m.state.clear()
        m.state.update({
            'async_allowed': True,
            'config': {'executionthreads': '3', 'batchsize': '512'},
            'execute': None,          # optional callable(cmd, *args) -> reply
            'release_hook': None,     # optional callable() run by release_lock_slice
            'lock_depth': 0,
        })
    m.reset = reset

    def execute(cmd, *args):
        m.calls.append(('execute', (cmd,) + args))
        h = m.state['execute']
        if h is not None:
            return h(cmd, *args)
        return 'OK'

    def lock():
        m.state['lock_depth'] += 1
        m.calls.append(('lock', ()))

    def unlock():
        m.state['lock_depth'] -= 1
        m.calls.append(('unlock', ()))

    def release_lock_slice():
        m.calls.append(('release_lock_slice', ()))
        h = m.state['release_hook']
        if h is not None:
            h()

    def log(msg, level):
        if level not in _LEVELS:
            raise GearsError('Log level should be one of the following : '
                             'debug,verbose,notice,warning')
        m.calls.append(('log', (msg, level)))

    def config_get(name):
        m.calls.append(('config_get', (name,)))
        return m.state['config'].get(name.lower())

    def hashtag():
        m.calls.append(('hashtag', ()))
        return '{06S}'

    def is_async_allowed():
        return m.state['async_allowed']

    def on_main_thread():
        return m.state.get('main_thread', False)

    def run(reader, reader_args, steps, options):
        m.calls.append(('run', (reader, reader_args, steps, options)))
        return None

    def register(reader, reader_args, steps, options):
        m.calls.append(('register', (reader, reader_args, steps, options)))
        return '0' * 40 + '-1'

    def call_next(*args):
        m.calls.append(('call_next', args))
        return 'OK'

    def override_reply(value):
        m.calls.append(('override_reply', (value,)))

    for f in (execute, lock, unlock, release_lock_slice, log, config_get, hashtag,
              is_async_allowed, on_main_thread, run, register, call_next, override_reply):
        setattr(m, f.__name__, f)
    reset()
    return m


FAKE = sys.modules.get('_gears')
if FAKE is None or not hasattr(FAKE, 'reset'):
    FAKE = _make_fake()
    sys.modules['_gears'] = FAKE


@pytest.fixture(autouse=True)
def fake():
    FAKE.reset()
    yield FAKE
    FAKE.reset()


def calls_of(name):
    return [args for (n, args) in FAKE.calls if n == name]
