"""`redisgears`: the module RedisGears 1.2 libraries import (rgsync, gearsclient, ...).

``import redisgears`` works in every session: the ``gears`` package registers this module
under that name. Each name is 1.2's, bound to this runtime's function of the same meaning.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Optional, Type

if TYPE_CHECKING:
    from . import _gears  # the native module's types (gears/_gears.pyi)
else:
    import _gears

from . import runtime as _rt
from .builder import GearsBuilder as _GB, registerTE as _registerTE

executeCommand = _rt.execute
callNext = _rt.call_next
overrideReply = _rt.override_reply
getMyHashTag = _rt.hashtag
registerTimeEvent = _registerTE
gearsFutureCtx = _rt.gearsFuture
log = _rt.log
config_get = _rt.configGet
isAsyncAllow = _rt.isAsyncAllow
createFuture = _rt.createFuture
setFutureResults = _rt.setFutureResults
setFutureException = _rt.setFutureException
runCoroutine = _rt.runCoroutine
flat_error = _rt.flat_error
GearsError = _gears.GearsError
GearsBuilder = _GB
GB = _GB


class atomicCtx(object):
    """1.2's atomic block: ``with atomicCtx(): ...`` (its ``__exit__`` may be called with
    no arguments, as gearsclient does)."""

    __slots__ = ('_block',)

    def __init__(self) -> None:
        self._block = _rt.atomic()

    def __enter__(self) -> atomicCtx:
        """Takes the Redis lock (nested blocks count)."""
        self._block.__enter__()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]] = None,
                 exc: Optional[BaseException] = None,
                 tb: Optional[TracebackType] = None) -> bool:
        """Gives the lock back; an exception of the block goes on."""
        return self._block.__exit__(exc_type, exc, tb)


def isInAtomicBlock() -> bool:
    """True inside an atomic block of this thread."""
    return bool(_gears.in_atomic())


def registerGearsThread() -> None:
    """1.2 asked threads a recipe starts to register before calling executeCommand; any
    thread may call it here, so this does nothing."""


__all__ = [
    'executeCommand', 'callNext', 'overrideReply', 'getMyHashTag', 'registerTimeEvent',
    'gearsFutureCtx', 'log', 'config_get', 'isAsyncAllow', 'createFuture',
    'setFutureResults', 'setFutureException', 'runCoroutine', 'flat_error', 'GearsError',
    'GearsBuilder', 'GB', 'atomicCtx', 'isInAtomicBlock', 'registerGearsThread',
]
