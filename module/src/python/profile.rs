//! RG.PYPROFILE's data: the cProfile statistics the shim keeps per session while
//! ProfileExecutions is 1 (`gears/_profile.py`).

use pyo3::prelude::*;

/// The statistics of session `sid` as text, ordered by `order_by` (a pstats sort key);
/// None when nothing of it was profiled.
pub fn stats(sid: &str, order_by: &str) -> Result<Option<String>, String> {
    Python::attach(|py| -> PyResult<Option<String>> {
        py.import("gears._profile")?
            .call_method1("stats", (sid, order_by))?
            .extract()
    })
    .map_err(|e| e.to_string())
}

/// Drops the statistics of session `sid`.
pub fn reset(sid: &str) -> Result<(), String> {
    Python::attach(|py| -> PyResult<()> {
        py.import("gears._profile")?.call_method1("reset", (sid,))?;
        Ok(())
    })
    .map_err(|e| e.to_string())
}
