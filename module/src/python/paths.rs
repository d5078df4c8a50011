//! Where things are on disk: the file a symbol was loaded from, the module's own folder
//! (the python-shim and the requirements live next to it).

use std::ffi::{c_void, CStr};
use std::path::PathBuf;

/// The file a symbol was loaded from.
fn file_of(symbol: *const c_void) -> Option<PathBuf> {
    // SAFETY: dladdr only looks `symbol` up (never dereferences it) and fills `info`, for
    // which all-zero is a valid start (pointers and ints). On success dli_fname, checked
    // non-null, is the loader's NUL-terminated name of the object holding `symbol`:
    // libpython or this module, both running code here, so neither is unloaded while
    // the name is copied out.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let name = CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned();
        Some(PathBuf::from(name))
    }
}

/// The libpython this module runs.
pub fn libpython() -> Option<PathBuf> {
    file_of(pyo3::ffi::Py_IsInitialized as *const c_void)
}

/// The folder the module's `.so` is in.
pub fn module_dir() -> Option<PathBuf> {
    let me = file_of(module_dir as *const c_void)?;
    Some(me.parent()?.to_path_buf())
}
