"""RG.PYPROFILE: cProfile statistics of each session's steps (the host's side).

While ProfileExecutions is 1, every push and finish of a fused run whose steps come from
a session (their functions' globals name it, as ``__gears_session__``) runs under a
profiler of its own, whose statistics are then added to the session's. A cProfile
profiler sees only the thread that enabled it, and one run's push and finish may run on
different threads (a sync run that moved to a worker, runs spread over the pool): a
profiler per call stays on its thread. RG.PYPROFILE STATS prints the sum, RG.PYPROFILE
RESET drops it.
"""

import cProfile
import io
import pstats
import threading
from typing import Dict

_lock = threading.Lock()
_stats: Dict[str, pstats.Stats] = {}  # session id -> pstats.Stats

SESSION_NAME = '__gears_session__'


def session_of(steps):
    """The session whose functions the steps call, if any."""
    for _op, args in steps:
        for a in args:
            g = getattr(a, '__globals__', None)
            if g is not None and SESSION_NAME in g:
                return g[SESSION_NAME]
    return None


def start():
    """A new profiler, enabled on this thread."""
    p = cProfile.Profile()
    p.enable()
    return p


def stop(sid, p):
    """Disables `p` and adds what it saw to session `sid`'s statistics."""
    p.disable()
    try:
        seen = pstats.Stats(p)
    except TypeError:
        return  # it saw no call
    with _lock:
        st = _stats.get(sid)
        if st is None:
            _stats[sid] = seen
        else:
            st.add(seen)


def stats(sid, order_by='tottime'):
    """The statistics of session `sid` as text (callers and callees included), or None
    when nothing was profiled."""
    out = io.StringIO()
    with _lock:
        st = _stats.get(sid)
        if st is None:
            return None
        st.stream = out
        st.sort_stats(order_by)
        st.print_stats()
        st.print_callers()
        st.print_callees()
    return out.getvalue()


def reset(sid):
    with _lock:
        _stats.pop(sid, None)
