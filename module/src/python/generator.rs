//! PythonReader (records from a generator function) and the KeysOnlyReader's
//! patternGenerator: readers whose source is Python code run on the shard.

use pyo3::prelude::*;

use super::convert::{describe_error, host, to_value};
use crate::engine::reader::Reader;
use crate::engine::value::Value;
use crate::readers::keys::PatternSource;

pub struct GeneratorReader {
    reader: Py<PyAny>,
    /// Plain values rather than Python objects (a native step reads them first).
    as_values: bool,
}

impl GeneratorReader {
    pub fn new(
        py: Python<'_>,
        generator_function: &Bound<'_, PyAny>,
        as_values: bool,
    ) -> PyResult<Self> {
        let reader = super::shim::generator_reader_class(py)?.call1((generator_function,))?;
        Ok(GeneratorReader {
            reader: reader.unbind(),
            as_values,
        })
    }
}

impl Reader for GeneratorReader {
    fn next_batch(&mut self, max: usize) -> anyhow::Result<Option<Vec<Value>>> {
        Python::attach(|py| {
            let watch = super::watchdog::enter(py);
            let failed = |e: &PyErr| match watch.fired().and_then(|f| f.error()) {
                Some(over_budget) => anyhow::anyhow!("{over_budget}"),
                None => anyhow::anyhow!("{}", describe_error(py, e)),
            };
            let items = self
                .reader
                .bind(py)
                .call_method1("next", (max,))
                .map_err(|e| failed(&e))?;
            let mut out = Vec::new();
            for item in items.try_iter().map_err(|e| failed(&e))? {
                let item = item.map_err(|e| failed(&e))?;
                out.push(if self.as_values {
                    to_value(&item)
                } else {
                    host(item)
                });
            }
            Ok(if out.is_empty() { None } else { Some(out) })
        })
    }
}

/// The pattern a patternGenerator callable gives, computed on the shard at run time.
pub fn pattern_source(generator: Py<PyAny>) -> PatternSource {
    Box::new(move || {
        Python::attach(|py| {
            let _watch = super::watchdog::enter(py);
            let pattern = generator
                .bind(py)
                .call0()
                .map_err(|e| anyhow::anyhow!("patternGenerator: {}", describe_error(py, &e)))?;
            pattern
                .extract::<String>()
                .map_err(|_| anyhow::anyhow!("patternGenerator must return a str pattern"))
        })
    })
}
