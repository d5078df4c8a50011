//! Values <-> Python objects.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PySet, PyString, PyTuple};

use crate::engine::value::{format_float, HostObject, Tag, Tagged, Value};

/// A Python object travelling through the engine untouched, with the plain value native
/// steps compare it by when it has one (a tuple's items).
pub struct PyRecord(pub Py<PyAny>, pub Option<Value>);

impl fmt::Debug for PyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PyRecord")
    }
}

impl HostObject for PyRecord {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn key(&self) -> Option<&Value> {
        self.1.as_ref()
    }

    fn to_reply(&self) -> Value {
        Python::attach(|py| to_reply(self.0.bind(py), true))
    }

    fn to_data(&self) -> Option<Value> {
        Python::attach(|py| to_data(self.0.bind(py)))
    }
}

/// A Python object that is data (None, bool, int, float, str, bytes, and lists, tuples,
/// dicts and sets of data) as a Value; None for anything else. Tuples and sets are
/// tagged, so the shard that receives them makes them tuples and sets again.
pub fn to_data(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if let Some(v) = scalar(obj) {
        return Some(v);
    }
    Some(if let Ok(l) = obj.cast::<PyList>() {
        Value::List(l.iter().map(|x| to_data(&x)).collect::<Option<_>>()?)
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        tagged(
            Tag::Tuple,
            t.iter().map(|x| to_data(&x)).collect::<Option<_>>()?,
        )
    } else if let Ok(d) = obj.cast::<PyDict>() {
        Value::Map(
            d.iter()
                .map(|(k, v)| Some((to_data(&k)?, to_data(&v)?)))
                .collect::<Option<_>>()?,
        )
    } else if let Ok(s) = obj.cast::<PySet>() {
        tagged(
            Tag::Set,
            s.iter().map(|x| to_data(&x)).collect::<Option<_>>()?,
        )
    } else {
        return None;
    })
}

pub fn host(obj: Bound<'_, PyAny>) -> Value {
    Value::Host(Arc::new(PyRecord(obj.unbind(), None)))
}

pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Nil => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) | Value::Status(s) | Value::Error(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for v in items {
                list.append(to_py(py, v)?)?;
            }
            list.into_any()
        }
        Value::Map(pairs) => {
            let dict = PyDict::new(py);
            for (k, v) in pairs {
                dict.set_item(to_py(py, k)?, to_py(py, v)?)?;
            }
            dict.into_any()
        }
        Value::Host(h) => {
            if let Some(r) = h.as_any().downcast_ref::<PyRecord>() {
                r.0.bind(py).clone()
            } else if let Some(t) = h.as_any().downcast_ref::<Tagged>() {
                // A tuple or a set that came from another shard is one again.
                let Value::List(items) = &t.items else {
                    return Ok(PyList::empty(py).into_any());
                };
                let items = items
                    .iter()
                    .map(|v| to_py(py, v))
                    .collect::<PyResult<Vec<_>>>()?;
                match t.tag {
                    Tag::Tuple => PyTuple::new(py, items)?.into_any(),
                    Tag::Set => PySet::new(py, &items)?.into_any(),
                }
            } else {
                PyString::new(py, "<foreign record>").into_any()
            }
        }
    })
}

/// None, bool, int (beyond 64 bits: its digits), float, str and bytes as a Value.
fn scalar(obj: &Bound<'_, PyAny>) -> Option<Value> {
    Some(if obj.is_none() {
        Value::Nil
    } else if let Ok(b) = obj.cast::<PyBool>() {
        Value::Bool(b.is_true())
    } else if let Ok(i) = obj.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Str(i.to_string()),
        }
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        Value::Float(f.value())
    } else if let Ok(s) = obj.cast::<PyString>() {
        Value::Str(s.to_string_lossy().into_owned())
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        Value::Bytes(b.as_bytes().to_vec())
    } else {
        return None;
    })
}

/// Structural conversion: containers become lists and maps; other objects stay Python.
pub fn to_value(obj: &Bound<'_, PyAny>) -> Value {
    if let Some(v) = scalar(obj) {
        v
    } else if let Ok(l) = obj.cast::<PyList>() {
        Value::List(l.iter().map(|x| to_value(&x)).collect())
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        // Stays a tuple for Python steps and replies; native steps compare its items.
        let items = Value::List(t.iter().map(|x| to_value(&x)).collect());
        Value::Host(Arc::new(PyRecord(obj.clone().unbind(), Some(items))))
    } else if let Ok(d) = obj.cast::<PyDict>() {
        Value::Map(
            d.iter()
                .map(|(k, v)| (to_value(&k), to_value(&v)))
                .collect(),
        )
    } else if let Ok(s) = obj.cast::<PySet>() {
        Value::List(s.iter().map(|x| to_value(&x)).collect())
    } else {
        host(obj.clone())
    }
}

/// The reply of a Python record when `convertToStr=False` (RedisGears 1.2's mapping):
/// list -> array, int/bool -> integer, float -> bulk string, str -> bulk string (a leading
/// '+' a status, '-' an error), bytes -> bulk, anything else -> "PY RECORD".
/// With `status_prefixes` false (convertToStr), strings are always plain bulk strings.
pub fn to_reply(obj: &Bound<'_, PyAny>, status_prefixes: bool) -> Value {
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_string_lossy();
        if status_prefixes {
            crate::host_api::text_reply(s.into_owned())
        } else {
            Value::Str(s.into_owned())
        }
    } else if let Ok(b) = obj.cast::<PyBool>() {
        Value::Int(b.is_true() as i64)
    } else if let Ok(i) = obj.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Str(i.to_string()),
        }
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        Value::Str(format_float(f.value()))
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        Value::Bytes(b.as_bytes().to_vec())
    } else if let Ok(l) = obj.cast::<PyList>() {
        Value::List(l.iter().map(|x| to_reply(&x, status_prefixes)).collect())
    } else {
        Value::Str("PY RECORD".into())
    }
}

/// "Type: message" of a Python exception.
pub fn describe_error(py: Python<'_>, err: &PyErr) -> String {
    let type_name = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if message.is_empty() {
        type_name
    } else {
        format!("{type_name}: {message}")
    }
}

fn tagged(tag: Tag, items: Vec<Value>) -> Value {
    Value::Host(Arc::new(Tagged {
        tag,
        items: Value::List(items),
    }))
}
