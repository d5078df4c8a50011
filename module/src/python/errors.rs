//! The exceptions of `_gears`, apart from the module itself: the interrupt machinery
//! raises them too, and must not depend on the native module's functions.

use pyo3::create_exception;

create_exception!(
    _gears,
    GearsError,
    pyo3::exceptions::PyException,
    "A Redis error reply."
);
create_exception!(
    _gears,
    ExecutionAborted,
    pyo3::exceptions::PyBaseException,
    "Raised inside a step when RG.ABORTEXECUTION stops its execution."
);
