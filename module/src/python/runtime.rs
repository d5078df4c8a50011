//! Starting the embedded interpreter: libpython's symbols, the python-shim on sys.path,
//! `_gears`, the watchdog and the janitor.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::paths::{libpython, module_dir};
use super::{gears_module, shim};

/// Redis loads modules with RTLD_LOCAL, which hides libpython's symbols from the C
/// extension modules Python loads later (math, json's scanner, decimal...). Re-open the
/// already loaded libpython with RTLD_GLOBAL; it is never closed.
fn reopen_libpython_global() {
    let Some(path) = libpython() else {
        redis_module::logging::log_warning("gears: could not find libpython's path");
        return;
    };
    let Ok(cpath) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: `cpath` is a NUL-terminated path that outlives the call. With RTLD_NOLOAD
    // nothing new is loaded (no constructors run): the already loaded libpython only gets
    // its symbols made global. The handle is deliberately leaked, so it is never closed.
    let handle = unsafe {
        libc::dlopen(
            cpath.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
        )
    };
    if handle.is_null() {
        redis_module::logging::log_warning(format!(
            "gears: could not re-open {} globally",
            path.display()
        ));
    }
}

/// The folder with the python-shim and its dependencies: `gears-python` next to the module.
fn shim_dir() -> Option<PathBuf> {
    Some(module_dir()?.join("gears-python"))
}

/// Starts CPython and imports the shim. Called once at module load.
pub fn init() -> anyhow::Result<()> {
    reopen_libpython_global();
    super::memory::install();
    Python::initialize();
    let dir = shim_dir().ok_or_else(|| anyhow::anyhow!("cannot find the module's own path"))?;
    if !Path::new(&dir).join("gears").is_dir() {
        anyhow::bail!(
            "the python-shim is missing: {} has no 'gears' package (run make build)",
            dir.display()
        );
    }
    Python::attach(|py| -> PyResult<()> {
        let sys = py.import("sys")?;
        sys.getattr("path")?
            .cast::<PyList>()?
            .insert(0, dir.to_string_lossy().as_ref())?;
        gears_module::register(py)?;
        let gears = py.import("gears")?;
        let fused = py.import("gears._fused")?;
        gears
            .getattr("runtime")?
            .call_method1("_install_recursion_cap", (recursion_cap(),))?;
        shim::keep(gears, &fused)?;
        super::watchdog::start(py, &dir.to_string_lossy())?;
        super::janitor::start()?;
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("starting Python: {e}"))
}

/// The interpreter's version ("3.11.7"). Takes the GIL: at load only.
pub fn version() -> String {
    Python::attach(|py| {
        let v = py.version_info();
        format!("{}.{}.{}", v.major, v.minor, v.patch)
    })
}

/// C stack one unit of the recursion limit may take: CPython 3.11 counts C-level
/// recursion (repr, ==, pickle, sorted(key=...) calling back into Python) against the
/// same limit. The worst pattern measured, a function recursing through
/// `sorted(key=f)`, overflowed 8 MB at a limit of about 2,560 (3.2 KB per unit).
const STACK_PER_RECURSION: u64 = 4096;

/// The highest recursion limit a recipe may set: what fits the smaller of the main
/// thread's stack (sync steps run there) and a worker's, at the worst measured cost.
fn recursion_cap() -> u64 {
    // SAFETY: getrlimit only writes the struct we pass, a valid place for an rlimit
    // (all-zero is a valid rlimit: two integers).
    let main_stack = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_STACK, &mut lim) == 0 && lim.rlim_cur != libc::RLIM_INFINITY
        {
            lim.rlim_cur as u64
        } else {
            8 << 20
        }
    };
    let stack = main_stack.min(crate::engine::pool::WORKER_STACK as u64);
    (stack / STACK_PER_RECURSION).max(1000)
}
