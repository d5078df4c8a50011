"""Runtime API available to recipes (execute, atomic, log, config, futures).

Everything here is a thin layer over the native module ``_gears`` (see CONTRACT.md).
"""

from __future__ import annotations

import asyncio
import threading
import weakref as _weakref
from types import TracebackType
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Literal, NoReturn, Optional,
                    Type)

if TYPE_CHECKING:
    from . import _gears  # the native module's types (gears/_gears.pyi)
else:
    import _gears

__all__ = [
    'execute', 'atomic', 'log', 'configGet', 'gearsConfigGet', 'hashtag',
    'gearsFuture', 'isAsyncAllow', 'GearsFuture', 'createFuture', 'setFutureResults',
    'setFutureException', 'runCoroutine', 'flat_error', 'GearsFlatError',
]

if TYPE_CHECKING:  # what an IDE or a type checker sees of the native functions below
    def execute(command: str, *args: Any) -> Any:
        """Runs a Redis command for the code's owner and returns its reply (an error reply
        raises GearsError)."""

    def call_next(*args: Any) -> Any:
        """Inside a CommandReader hook: the next hook, or the real command."""

    def override_reply(value: Any) -> None:
        """Inside a KeysReader registration with commands= (sync): the reply the
        intercepted command's client gets instead of the command's own."""
else:
    # `execute` is the hottest call of most recipes: bind the native function directly so
    # a call costs no extra Python frame.
    execute = _gears.execute
    call_next = _gears.call_next
    override_reply = _gears.override_reply

# Per-thread stack of the fused runs currently executing (a step may call execute(), which
# can start a nested sync execution on the same thread). gearsFuture() looks at the top.
_tls = threading.local()


def _current_run() -> Any:
    return getattr(_tls, 'run', None)


def _forget_interrupted() -> None:
    """Called by the host on a thread whose outermost run was just stopped by an
    asynchronous ExecutionAborted: it can land in a ``finally`` before that block
    restored the thread's state, and a worker keeps its thread state from one run to
    the next. No run and no event loop is running on this thread any more."""
    _tls.run = None
    asyncio._set_running_loop(None)


class atomic(object):
    """Context manager holding the Redis lock across a block::

        with atomic():
            execute('incr', 'a')
            execute('incr', 'b')

    Nesting is counted by the host. The lock is released on every exit, exceptions included.
    """

    __slots__ = ()

    def __enter__(self) -> atomic:
        """Takes the Redis lock (nested blocks count)."""
        _gears.lock()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        """Gives the lock back; an exception of the block goes on."""
        _gears.unlock()
        return False


def log(msg: Any, level: str = 'notice') -> None:
    """Write ``msg`` to the Redis log. level: debug, verbose, notice or warning."""
    if not isinstance(msg, str):
        msg = str(msg)
    _gears.log(msg, level)


def configGet(name: str) -> Optional[str]:
    """The module configuration value ``name`` (case-insensitive) as str, None when unknown."""
    return _gears.config_get(name)


def gearsConfigGet(name: str, default: Any = None) -> Any:
    """Like configGet, but returns ``default`` when the value is unknown."""
    val = _gears.config_get(name)
    return default if val is None else val


def hashtag() -> str:
    """A tag whose hash slot belongs to this shard, without braces (as in RedisGears 1.2):
    keys written ``'name{%s}' % hashtag()`` live on this shard."""
    return _gears.hashtag()


def isAsyncAllow() -> bool:
    """True when the current step may return a gearsFuture() or be an ``async def``:
    in an async execution, and in a sync one that may move to the background (not inside
    MULTI, a script, a hook or another execution)."""
    return bool(_gears.is_async_allowed())


class _FutureState(object):
    """What a parked record waits on: the outcome a GearsFuture is given. The run keeps
    this, not the GearsFuture, so a future its user code lets go of can be noticed."""

    __slots__ = ('_event', '_lock', '_resolved', '_ok', '_value', '_parked', '_owner')

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._resolved = False
        self._ok = False
        self._value = None
        self._parked = False
        run = _current_run()
        self._owner = None if run is None else _weakref.ref(run)

    def _resolve(self, ok: bool, value: Any) -> None:
        with self._lock:
            if self._resolved:
                raise _gears.GearsError('Future was already resolved')
            self._resolved = True
            self._ok = ok
            self._value = value
        self._event.set()


class GearsFuture(object):
    """A record whose value is given later, from any thread.

    Returned by a map/flatmap/filter/foreach step, it parks the record until
    ``continueRun(value)`` (the record continues with ``value`` as that step's result) or
    ``continueFailed(error)`` (the record is dropped and ``error`` becomes an error entry:
    an exception is shown as ``Type: message``, anything else as ``str(error)``).
    A future can be resolved once; a second call raises GearsError. As in RedisGears 1.2:
    the step that creates it cannot resolve it before returning it (`Can not handle
    future untill it returned from the callback`), and a future dropped by every
    reference before it was resolved fails its record (`Async record did not called
    continue`), so nothing waits for it forever.
    """

    __slots__ = ('_st',)

    def __init__(self) -> None:
        self._st = _FutureState()

    def _resolve(self, ok: bool, value: Any) -> None:
        st = self._st
        owner = st._owner and st._owner()
        if not st._parked and owner is not None and owner is _current_run():
            raise _gears.GearsError('Can not handle future untill it returned from the callback')
        st._resolve(ok, value)

    def continueRun(self, record: Any) -> None:
        """The parked record continues with ``record`` as its step's result."""
        self._resolve(True, record)

    def continueFailed(self, error: Any) -> None:
        """The parked record is dropped; ``error`` (an exception or a text) becomes an
        error entry."""
        self._resolve(False, error)

    def __del__(self) -> None:
        st = self._st
        if not st._resolved:
            try:
                st._resolve(False, _gears.GearsError('Async record did not called continue'))
            except Exception:
                pass

    def __repr__(self) -> str:
        st = self._st
        state = 'pending'
        if st._resolved:
            state = 'done' if st._ok else 'failed'
        return '<gearsFuture %s>' % state


def gearsFuture() -> GearsFuture:
    """Create a future to return from a step (async executions only). ``async def`` steps
    run on the worker, inside their run, so they may create futures too."""
    if not _gears.is_async_allowed():
        raise _gears.GearsError('Future object is not allowed on sync execution')
    return GearsFuture()


def _install_sleep_release() -> None:
    """A step that sleeps gives the Redis lock back first.

    A worker keeps the Redis lock across a step's consecutive execute() calls for a short
    time slice (LockSliceMicros), so a step that calls execute() and then sleeps would
    otherwise keep every other client waiting for the whole sleep.
    """
    import time as _time
    real_sleep = _time.sleep
    if getattr(real_sleep, '_gears_releases_lock', False):
        return

    def sleep(seconds: float) -> None:
        _gears.release_lock_slice()
        return real_sleep(seconds)

    sleep._gears_releases_lock = True  # type: ignore[attr-defined]
    sleep.__doc__ = real_sleep.__doc__
    _time.sleep = sleep  # type: ignore[assignment]


_install_sleep_release()


def _install_recursion_cap(cap: int) -> None:
    """Caps ``sys.setrecursionlimit`` inside recipes at ``cap`` (set by the host at load).

    CPython counts C-level recursion (repr of nested lists, ==, pickle, sorted(key=...)
    calling back into Python) against the recursion limit, and a high limit lets such
    code overflow the C stack of the thread it runs on: that kills Redis. The host
    computes ``cap`` from the main thread's and the workers' stack sizes. A larger request
    is clamped to the cap (libraries that raise the limit at import keep working) and
    logged; ``sys.getrecursionlimit()`` tells the value in force.
    """
    import sys as _sys
    real = getattr(_sys.setrecursionlimit, '_gears_real', _sys.setrecursionlimit)

    def setrecursionlimit(limit: int) -> None:
        if not isinstance(limit, int):
            raise TypeError("'%s' object cannot be interpreted as an integer"
                            % type(limit).__name__)
        if limit > cap:
            log('sys.setrecursionlimit(%d) was clamped to %d: a higher limit could '
                'overflow the C stack and crash Redis' % (limit, cap), level='warning')
            limit = cap
        real(limit)

    setrecursionlimit._gears_real = real  # type: ignore[attr-defined]
    setrecursionlimit._gears_cap = cap  # type: ignore[attr-defined]
    setrecursionlimit.__doc__ = real.__doc__
    _sys.setrecursionlimit = setrecursionlimit
    if _sys.getrecursionlimit() > cap:
        real(cap)


# -- RedisGears 1.2's asyncio helpers ------------------------------------------------------
#
# 1.2 ran every coroutine on one event loop thread. Here an ``async def`` step runs on an
# event loop owned by its run, on the run's worker (gears._fused): a future belongs to the
# loop of the run that created it, and is resolved through that loop from any thread.


def _running_loop(what: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise _gears.GearsError('%s can only be called by a coroutine (an async def step)'
                                % what) from None


def createFuture() -> asyncio.Future[Any]:
    """A future for the calling ``async def`` step to await; any thread resolves it with
    setFutureResults / setFutureException (another execution's step, for instance)."""
    return _running_loop('createFuture()').create_future()


def _resolve_soon(f: asyncio.Future[Any], resolve: Callable[[], None]) -> None:
    def once() -> None:
        if not f.done():
            resolve()
    try:
        f.get_loop().call_soon_threadsafe(once)
    except RuntimeError:
        # The run that awaited it has ended (its loop is closed): nobody waits any more.
        pass


def setFutureResults(f: asyncio.Future[Any], res: Any) -> None:
    """Resolves future ``f`` (from createFuture) with ``res``."""
    _resolve_soon(f, lambda: f.set_result(res))


def setFutureException(f: asyncio.Future[Any], exception: Any) -> None:
    """Fails future ``f`` (from createFuture): its awaiter raises ``exception`` (an
    exception, or anything else, raised as ``Exception(str(exception))``)."""
    if not isinstance(exception, BaseException):
        exception = Exception(str(exception))
    _resolve_soon(f, lambda: f.set_exception(exception))


def runCoroutine(cr: Awaitable[Any], f: Optional[GearsFuture] = None, delay: float = 0,
                 s: Any = None) -> None:
    """Runs coroutine ``cr`` in the background, after ``delay`` seconds; its result
    continues gearsFuture ``f`` (continueRun), an exception fails it (continueFailed).
    Called by an ``async def`` step, it runs on that step's loop (until the run ends);
    elsewhere, on a thread of its own. ``s`` (1.2's session object) is accepted and
    ignored: the code runs in the session that called runCoroutine."""
    async def run_internal() -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            res = await cr
        except Exception as e:
            if f is not None:
                f.continueFailed(e)
            return
        if f is not None:
            f.continueRun(res)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        loop.create_task(run_internal())
    else:
        threading.Thread(target=asyncio.run, args=(run_internal(),), daemon=True).start()


class GearsFlatError(Exception):
    """An error whose text becomes the error entry (or the reply of a trigger or hook)
    as it is: no exception type, no traceback."""


def flat_error(msg: Any) -> NoReturn:
    """Raises an error reported exactly as ``msg`` (no type, no traceback), as RedisGears
    1.2's did::

        GB('StreamReader').foreach(lambda x: flat_error('PAUSE waiting for the database'))
    """
    raise GearsFlatError(str(msg))

