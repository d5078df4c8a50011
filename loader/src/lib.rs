//! `redisgears.so`, the file a deployment loads: it picks the build of the module that fits
//! the PythonEnabled it is given and hands it the load.
//!
//! Why: Redis loads a module with `dlopen(RTLD_NOW)`, so every library the module links
//! must be found the moment it loads. The Python build links libpython; built on one
//! machine it would either carry a path to that machine's interpreter (a RUNPATH) or fail
//! to load wherever libpython is missing, even when the server never runs Python. So the
//! package holds two builds, `gears-core-python.so` and `gears-core.so` (no Python host, no
//! libpython), and this loader, which depends on nothing but libc.
//!
//! What stays the same: the module's name, commands, configuration and replies; the load
//! arguments are passed on untouched (the module reads PythonEnabled itself), MODULE LIST
//! shows this file's path and those arguments, MODULE UNLOAD is refused as before.
//!
//! What differs: with PythonEnabled 1 (the default) the loader first opens libpython, by
//! the path given as `PythonLibrary <path>` or else by its soname through the dynamic
//! linker's search (ld.so.cache, LD_LIBRARY_PATH), with RTLD_GLOBAL so that Python's C
//! extension modules see its symbols; the Python build then links against the library
//! already open. A missing libpython is one clear line in the log, not a linker error.
//!
//! When it is not used: development builds (`make build`) load
//! `target/release/libredisgears_rs.so` directly, which finds the interpreter it was built
//! with by its RUNPATH.

// As in the module: every unsafe block says why it is sound, every unsafe fn its callers'
// obligations (clippy.toml: private ones too).
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Redis's `RedisModuleCtx` and `RedisModuleString`, only ever passed through.
type Ctx = c_void;
type RString = c_void;
type GetApi = unsafe extern "C" fn(*const c_char, *mut c_void) -> c_int;
type StringPtrLen = unsafe extern "C" fn(*const RString, *mut usize) -> *const c_char;
type Log = unsafe extern "C" fn(*mut Ctx, *const c_char, *const c_char, ...);
type OnLoad = unsafe extern "C" fn(*mut Ctx, *mut *mut RString, c_int) -> c_int;
type OnUnload = unsafe extern "C" fn(*mut Ctx) -> c_int;

/// REDISMODULE_ERR; OK (0) comes from the build's own OnLoad.
const ERR: c_int = 1;

/// The soname of the libpython the Python build links (build.rs asks the interpreter).
const LIBPYTHON: &str = env!("GEARS_LIBPYTHON");
const CORE_PYTHON: &str = "gears-core-python.so";
const CORE: &str = "gears-core.so";

/// The build's unload entry, kept for MODULE UNLOAD.
static CORE_UNLOAD: OnceLock<Option<OnUnload>> = OnceLock::new();

/// The two module API functions the loader itself needs.
struct Api {
    ctx: *mut Ctx,
    string_ptr_len: StringPtrLen,
    log: Log,
}

impl Api {
    /// # Safety
    /// `ctx` must be the context Redis passed to `RedisModule_OnLoad`, valid for the call.
    unsafe fn of(ctx: *mut Ctx) -> Option<Api> {
        if ctx.is_null() {
            return None;
        }
        // SAFETY: as RedisModule_Init in redismodule.h does: the first word of a module
        // context Redis passes to OnLoad is its RedisModule_GetApi function.
        let get_api: GetApi = unsafe {
            let first = *(ctx as *const *const c_void);
            if first.is_null() {
                return None;
            }
            std::mem::transmute::<*const c_void, GetApi>(first)
        };
        let lookup = |name: &CStr| -> Option<*mut c_void> {
            let mut f: *mut c_void = std::ptr::null_mut();
            // SAFETY: GetApi writes the named function's address into the pointer it is
            // given and returns 0, or leaves it and returns non-zero; the name is
            // NUL-terminated.
            let found = unsafe { get_api(name.as_ptr(), &mut f as *mut _ as *mut c_void) };
            (found == 0 && !f.is_null()).then_some(f)
        };
        let string_ptr_len = lookup(c"RedisModule_StringPtrLen")?;
        let log = lookup(c"RedisModule_Log")?;
        // SAFETY: the API functions of those names have these C signatures
        // (redismodule.h), and a function pointer has the size of a data pointer here.
        unsafe {
            Some(Api {
                ctx,
                string_ptr_len: std::mem::transmute::<*mut c_void, StringPtrLen>(string_ptr_len),
                log: std::mem::transmute::<*mut c_void, Log>(log),
            })
        }
    }

    fn log(&self, level: &CStr, line: &str) {
        let line = CString::new(format!("gears: {line}").replace('\0', " "))
            .unwrap_or_else(|_| CString::from(c"gears: (unprintable)"));
        // SAFETY: the context is the live OnLoad context; "%s" takes the one
        // NUL-terminated string given, which outlives the call.
        unsafe { (self.log)(self.ctx, level.as_ptr(), c"%s".as_ptr(), line.as_ptr()) };
    }

    /// # Safety
    /// `argv` must hold `argc` valid module strings (the OnLoad arguments).
    unsafe fn args(&self, argv: *mut *mut RString, argc: c_int) -> Vec<String> {
        (0..argc.max(0) as usize)
            .map(|i| {
                // SAFETY: i < argc, and each entry is a module string Redis keeps alive
                // during the load; StringPtrLen gives its bytes and their length.
                unsafe {
                    let mut len = 0usize;
                    let ptr = (self.string_ptr_len)(*argv.add(i), &mut len);
                    if ptr.is_null() {
                        return String::new();
                    }
                    let bytes = std::slice::from_raw_parts(ptr as *const u8, len);
                    String::from_utf8_lossy(bytes).into_owned()
                }
            })
            .collect()
    }
}

/// The value of a load argument given as `name value` (the last one, as the module reads).
fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.chunks(2)
        .filter(|pair| pair.len() == 2 && pair[0].eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str())
        .next_back()
}

/// Whether the load asks for Python: on unless PythonEnabled is 0 (a wrong value is the
/// module's to refuse, with its own message).
fn wants_python(args: &[String]) -> bool {
    arg(args, "PythonEnabled").is_none_or(|v| v.trim() != "0")
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message valid until the next dl
    // call on this thread; it is copied out at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

fn dlopen(path: &str, flags: c_int) -> Result<*mut c_void, String> {
    let c = CString::new(path).map_err(|_| format!("a path with a NUL byte: {path:?}"))?;
    // SAFETY: a NUL-terminated path; opening runs the library's initialisers, which is
    // what loading it means. Handles are never closed (the module cannot be unloaded).
    let handle = unsafe { libc::dlopen(c.as_ptr(), flags) };
    if handle.is_null() {
        return Err(dl_error());
    }
    Ok(handle)
}

fn symbol(handle: *mut c_void, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: a live handle from dlopen and a NUL-terminated name.
    let f = unsafe { libc::dlsym(handle, name.as_ptr()) };
    (!f.is_null()).then_some(f)
}

/// The folder this loader was loaded from: the builds sit next to it.
fn own_dir() -> Option<PathBuf> {
    // SAFETY: dladdr only looks the address up and fills `info` (all-zero is a valid
    // start); on success dli_fname is this object's NUL-terminated path, copied out while
    // the object is loaded.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let me = RedisModule_OnLoad as *const c_void;
        if libc::dladdr(me, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let path = PathBuf::from(CStr::from_ptr(info.dli_fname).to_string_lossy().as_ref());
        Some(path.parent()?.to_path_buf())
    }
}

/// Opens libpython for the Python build: the given path, or the soname.
fn open_libpython(args: &[String]) -> Result<(), String> {
    let wanted = arg(args, "PythonLibrary").unwrap_or(LIBPYTHON);
    dlopen(wanted, libc::RTLD_NOW | libc::RTLD_GLOBAL)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "PythonEnabled is 1 but {wanted} cannot be loaded ({e}). Install it (Debian \
                 and Ubuntu: apt install {}), give its path with the load argument \
                 PythonLibrary <path>, or load with PythonEnabled 0",
                package_of(LIBPYTHON)
            )
        })
}

/// Debian's package of a libpython soname: libpython3.11.so.1.0 -> libpython3.11.
fn package_of(soname: &str) -> &str {
    soname.split(".so").next().unwrap_or(soname)
}

/// Picks and opens the build, and runs its OnLoad.
///
/// # Safety
/// The arguments must be those Redis passed to `RedisModule_OnLoad`.
unsafe fn load(api: &Api, argv: *mut *mut RString, argc: c_int) -> Result<c_int, String> {
    // SAFETY: as this function's contract says.
    let args = unsafe { api.args(argv, argc) };
    let python = wants_python(&args);
    if python {
        open_libpython(&args)?;
    }
    let dir = own_dir().ok_or("cannot find the folder redisgears.so was loaded from")?;
    let core = dir.join(if python { CORE_PYTHON } else { CORE });
    let handle = dlopen(&path_text(&core)?, libc::RTLD_NOW | libc::RTLD_LOCAL)
        .map_err(|e| format!("cannot load {}: {e}", core.display()))?;
    let on_load = symbol(handle, c"RedisModule_OnLoad")
        .ok_or_else(|| format!("{} has no RedisModule_OnLoad", core.display()))?;
    let on_unload = symbol(handle, c"RedisModule_OnUnload");
    // SAFETY: the module's entry points have Redis's OnLoad / OnUnload signatures.
    let (on_load, on_unload) = unsafe {
        (
            std::mem::transmute::<*mut c_void, OnLoad>(on_load),
            on_unload.map(|f| std::mem::transmute::<*mut c_void, OnUnload>(f)),
        )
    };
    let _ = CORE_UNLOAD.set(on_unload);
    // SAFETY: the build's OnLoad gets exactly what Redis gave this one, during the load.
    Ok(unsafe { on_load(api.ctx, argv, argc) })
}

fn path_text(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("a path that is not UTF-8: {}", path.display()))
}

/// Redis's module entry point.
///
/// # Safety
/// Called by Redis only, with a live load context and `argc` module strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn RedisModule_OnLoad(
    ctx: *mut Ctx,
    argv: *mut *mut RString,
    argc: c_int,
) -> c_int {
    std::panic::catch_unwind(|| {
        // SAFETY: the context Redis passed to this OnLoad.
        let Some(api) = (unsafe { Api::of(ctx) }) else {
            return ERR;
        };
        // SAFETY: argv and argc are Redis's, as given.
        match unsafe { load(&api, argv, argc) } {
            Ok(status) => status,
            Err(e) => {
                api.log(c"warning", &e);
                ERR
            }
        }
    })
    .unwrap_or(ERR)
}

/// MODULE UNLOAD: the build's answer (it refuses), or a refusal when none was loaded.
///
/// # Safety
/// Called by Redis only, with a live context.
#[no_mangle]
pub unsafe extern "C" fn RedisModule_OnUnload(ctx: *mut Ctx) -> c_int {
    match CORE_UNLOAD.get() {
        // SAFETY: the loaded build's own OnUnload, given Redis's context.
        Some(Some(unload)) => unsafe { unload(ctx) },
        _ => ERR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn python_is_on_unless_the_load_says_0() {
        assert!(wants_python(&args(&[])));
        assert!(wants_python(&args(&["ExecutionThreads", "2"])));
        assert!(wants_python(&args(&["pythonenabled", "1"])));
        assert!(!wants_python(&args(&["PythonEnabled", "0"])));
        assert!(!wants_python(&args(&["PythonEnabled", " 0 "])));
        // The last one counts, as in the module.
        assert!(wants_python(&args(&[
            "PythonEnabled",
            "0",
            "PythonEnabled",
            "1"
        ])));
        // Values are not names: "x PythonEnabled" is the argument x.
        assert!(wants_python(&args(&["x", "PythonEnabled", "0"])));
    }

    #[test]
    fn libpython_comes_by_path_or_soname() {
        assert_eq!(
            arg(&args(&["PythonLibrary", "/opt/py/lib.so"]), "PythonLibrary"),
            Some("/opt/py/lib.so")
        );
        assert_eq!(arg(&args(&["PythonEnabled", "1"]), "PythonLibrary"), None);
        assert!(LIBPYTHON.starts_with("libpython"));
        assert_eq!(package_of("libpython3.11.so.1.0"), "libpython3.11");
    }
}
