"""The `gears` package: what RedisGears-style recipes use.

Every name in ``__all__`` is copied into the globals of each RG.PYEXECUTE session, so a
recipe uses them without importing anything. ``gears._fused`` is the host's side (fused
runs of steps, the PythonReader); it is not part of ``__all__``.
"""

from __future__ import annotations

import sys as _sys
from typing import TYPE_CHECKING, Any, Callable, TypeVar, cast

try:
    if TYPE_CHECKING:
        from . import _gears  # noqa: F401  (the native module's types: gears/_gears.pyi)
    else:
        import _gears  # noqa: F401  (inside Redis: the module's native side)
except ImportError:
    # Anywhere else (an IDE, a test, pip install ./python-shim): a local dry run.
    from . import local as _local
    _sys.modules['_gears'] = _local.native  # type: ignore[assignment]

from .builder import GearsBuilder, GB, registerTE
from .runtime import (execute, atomic, log, configGet, gearsConfigGet, hashtag,
                      gearsFuture, isAsyncAllow, call_next, override_reply, createFuture,
                      setFutureResults, setFutureException, runCoroutine, flat_error)
from . import redisgears as _redisgears

# Libraries written for RedisGears 1.2 (rgsync, gearsclient...) import `redisgears`.
_sys.modules.setdefault('redisgears', _redisgears)


_F = TypeVar('_F', bound=Callable[..., Any])


def _deprecated(old: str, new: str, target: _F) -> _F:
    def method(*args: Any, **kwargs: Any) -> Any:
        log('%s is deprecated, use %s instead' % (old, new), level='warning')
        return target(*args, **kwargs)
    method.__name__ = old
    method.__qualname__ = old
    method.__doc__ = 'Deprecated alias of %s (kept for RedisGears 1.2 recipes).' % new
    # what inspect.signature / typing.get_type_hints tell of it: the target's signature
    method.__wrapped__ = target  # type: ignore[attr-defined]
    method.__annotations__ = dict(target.__annotations__)
    return cast(_F, method)


# Deprecated spellings that RedisGears 1.2 still offered (they log a warning).
Log = _deprecated('Log', 'log', log)
ConfigGet = _deprecated('ConfigGet', 'configGet', configGet)
GearsConfigGet = _deprecated('GearsConfigGet', 'gearsConfigGet', gearsConfigGet)

__all__ = [
    'GearsBuilder', 'GB', 'execute', 'atomic', 'log', 'configGet', 'gearsConfigGet',
    'hashtag', 'gearsFuture', 'isAsyncAllow', 'call_next', 'override_reply',
    'createFuture', 'setFutureResults', 'setFutureException', 'runCoroutine', 'flat_error',
    'registerTE', 'Log', 'ConfigGet', 'GearsConfigGet',
]
