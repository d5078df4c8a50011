//! Memory figures of the interpreter for RG.PYSTATS: the object and memory allocator
//! domains are wrapped to count bytes. Each block carries a 16-byte header with its size
//! (16 keeps CPython's alignment). Installed after pre-initialisation and before
//! initialisation, so every block of those domains goes through the wrapper; those
//! allocations hold the GIL, so plain loads and stores suffice for the counters.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::ffi::{PyMemAllocatorDomain, PyMemAllocatorEx};

const HEADER: usize = 16;

static TOTAL: AtomicU64 = AtomicU64::new(0);
static CURRENT: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// The wrapped allocators, one per wrapped domain (MEM, OBJ).
static mut ORIGINAL: [Option<PyMemAllocatorEx>; 2] = [None, None];

pub struct Stats {
    pub total: u64,
    pub peak: u64,
    pub current: u64,
}

/// Whether the counting wrappers are installed (Python was started).
pub fn installed() -> bool {
    // SAFETY: ORIGINAL is written once, on the main thread at load, before any reader.
    unsafe { (*std::ptr::addr_of!(ORIGINAL))[0].is_some() }
}

pub fn stats() -> Stats {
    Stats {
        total: TOTAL.load(Ordering::Relaxed),
        peak: PEAK.load(Ordering::Relaxed),
        current: CURRENT.load(Ordering::Relaxed),
    }
}

fn added(size: usize) {
    let size = size as u64;
    TOTAL.store(TOTAL.load(Ordering::Relaxed) + size, Ordering::Relaxed);
    let current = CURRENT.load(Ordering::Relaxed) + size;
    CURRENT.store(current, Ordering::Relaxed);
    if current > PEAK.load(Ordering::Relaxed) {
        PEAK.store(current, Ordering::Relaxed);
    }
}

fn removed(size: usize) {
    CURRENT.store(
        CURRENT.load(Ordering::Relaxed).saturating_sub(size as u64),
        Ordering::Relaxed,
    );
}

fn original(ctx: *mut c_void) -> &'static PyMemAllocatorEx {
    // SAFETY: ORIGINAL is written once before the wrappers are installed and never after;
    // ctx is the index we installed the wrapper with.
    unsafe {
        let slots = &*std::ptr::addr_of!(ORIGINAL);
        slots[ctx as usize]
            .as_ref()
            .unwrap_or_else(|| std::process::abort())
    }
}

/// Writes the header and returns the user pointer.
unsafe fn with_header(block: *mut c_void, size: usize) -> *mut c_void {
    if block.is_null() {
        return block;
    }
    // SAFETY: `block` has room for HEADER + size bytes, aligned for usize.
    unsafe {
        *(block as *mut usize) = size;
        added(size);
        (block as *mut u8).add(HEADER) as *mut c_void
    }
}

unsafe fn header_of(ptr: *mut c_void) -> (*mut c_void, usize) {
    // SAFETY: every non-null pointer of a wrapped domain was made by `with_header`.
    unsafe {
        let block = (ptr as *mut u8).sub(HEADER) as *mut c_void;
        (block, *(block as *mut usize))
    }
}

extern "C" fn malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let o = original(ctx);
    let Some(f) = o.malloc else {
        return std::ptr::null_mut();
    };
    // SAFETY: see `with_header`.
    unsafe { with_header(f(o.ctx, size + HEADER), size) }
}

extern "C" fn calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let o = original(ctx);
    let Some(size) = nelem.checked_mul(elsize) else {
        return std::ptr::null_mut();
    };
    let Some(f) = o.calloc else {
        return std::ptr::null_mut();
    };
    // SAFETY: see `with_header`.
    unsafe { with_header(f(o.ctx, 1, size + HEADER), size) }
}

extern "C" fn realloc(ctx: *mut c_void, ptr: *mut c_void, new_size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(ctx, new_size);
    }
    let o = original(ctx);
    let Some(f) = o.realloc else {
        return std::ptr::null_mut();
    };
    // SAFETY: `ptr` came from this wrapper; on failure the old block stays valid.
    unsafe {
        let (block, old) = header_of(ptr);
        let grown = f(o.ctx, block, new_size + HEADER);
        if grown.is_null() {
            return grown;
        }
        removed(old);
        with_header(grown, new_size)
    }
}

extern "C" fn free(ctx: *mut c_void, ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    let o = original(ctx);
    // SAFETY: `ptr` came from this wrapper.
    unsafe {
        let (block, size) = header_of(ptr);
        removed(size);
        if let Some(f) = o.free {
            f(o.ctx, block);
        }
    }
}

/// Pre-initialises CPython and installs the counting wrappers. Must run before
/// `Python::initialize`.
pub fn install() {
    // SAFETY: called once, on the main thread, before the interpreter is initialised and
    // before any MEM/OBJ allocation (pre-initialisation only uses the RAW domain).
    unsafe {
        if pyo3::ffi::Py_IsInitialized() != 0 {
            return;
        }
        let mut pre: pyo3::ffi::PyPreConfig = std::mem::zeroed();
        pyo3::ffi::PyPreConfig_InitPythonConfig(&mut pre);
        pre.parse_argv = 0;
        pre.coerce_c_locale = 0;
        pre.coerce_c_locale_warn = 0;
        pre.utf8_mode = 0;
        let status = pyo3::ffi::Py_PreInitialize(&pre);
        if pyo3::ffi::PyStatus_Exception(status) != 0 {
            return;
        }
        let slots = &mut *std::ptr::addr_of_mut!(ORIGINAL);
        for (i, domain) in [
            PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
            PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
        ]
        .into_iter()
        .enumerate()
        {
            let mut orig: PyMemAllocatorEx = std::mem::zeroed();
            pyo3::ffi::PyMem_GetAllocator(domain, &mut orig);
            slots[i] = Some(orig);
            let mut wrapper = PyMemAllocatorEx {
                ctx: i as *mut c_void,
                malloc: Some(malloc),
                calloc: Some(calloc),
                realloc: Some(realloc),
                free: Some(free),
            };
            pyo3::ffi::PyMem_SetAllocator(domain, &mut wrapper);
        }
    }
}
