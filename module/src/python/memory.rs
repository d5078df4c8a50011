//! Memory figures of the interpreter for RG.PYSTATS: the object and memory allocator
//! domains are wrapped to count bytes. Each block carries a 16-byte header with its size
//! (16 keeps CPython's alignment). Installed after pre-initialisation and before
//! initialisation, so every block of those domains goes through the wrapper; those
//! allocations hold the GIL, so plain loads and stores suffice for the counters.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

use pyo3::ffi::{PyMemAllocatorDomain, PyMemAllocatorEx};

const HEADER: usize = 16;

static TOTAL: AtomicU64 = AtomicU64::new(0);
static CURRENT: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// The wrapped allocators, one per wrapped domain (MEM, OBJ; the wrapper's `ctx` is the
/// index), set once by `install` before the wrappers are.
static ORIGINAL: OnceLock<Originals> = OnceLock::new();

struct Originals([PyMemAllocatorEx; 2]);

// SAFETY: PyMemAllocatorEx is !Send and !Sync only for its `ctx` pointer: CPython's
// own allocator state, never dereferenced here, only handed back to CPython's allocator
// functions. CPython calls those from whichever thread allocates (with the GIL held, the
// rule of the MEM and OBJ domains), so sharing the table between threads is what CPython
// itself does.
unsafe impl Send for Originals {}
// SAFETY: see Send; the table is never written after `install` set it.
unsafe impl Sync for Originals {}

pub struct Stats {
    pub total: u64,
    pub peak: u64,
    pub current: u64,
}

/// Whether the counting wrappers are installed (Python was started).
pub fn installed() -> bool {
    ORIGINAL.get().is_some()
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
    // The wrappers are installed only once ORIGINAL is set, with ctx 0 or 1.
    match ORIGINAL.get() {
        Some(o) => &o.0[ctx as usize],
        None => std::process::abort(),
    }
}

/// Writes the header and returns the user pointer.
///
/// # Safety
/// `block` is null, or a block the original allocator has just returned for at least
/// `HEADER + size` bytes (CPython's allocators align blocks to 16, so to `usize` too).
unsafe fn with_header(block: *mut c_void, size: usize) -> *mut c_void {
    if block.is_null() {
        return block;
    }
    added(size);
    // SAFETY: `block` is valid for HEADER + size bytes and aligned for usize (the
    // function's contract): the size goes in the first bytes, and the user pointer
    // HEADER bytes further is still inside the block.
    unsafe {
        *(block as *mut usize) = size;
        (block as *mut u8).add(HEADER) as *mut c_void
    }
}

/// The block under a user pointer, and the size its header holds.
///
/// # Safety
/// `ptr` was returned by `with_header` for a block that has not been freed since.
unsafe fn header_of(ptr: *mut c_void) -> (*mut c_void, usize) {
    // SAFETY: by the contract, `ptr` is HEADER bytes into a live block whose first bytes
    // hold its size, written by `with_header`.
    unsafe {
        let block = (ptr as *mut u8).sub(HEADER) as *mut c_void;
        (block, *(block as *mut usize))
    }
}

// The four wrappers are what CPython calls for the MEM and OBJ domains. They are safe
// `extern "C" fn`s only because pyo3's PyMemAllocatorEx types them so; they are sound
// as CPython calls them, and are private to this file, which calls none of them
// itself except `realloc` calling `malloc`. What they rely on: a non-null `ptr` that
// CPython gives `realloc` or `free` was returned by the same domain's allocator and not
// freed; as `install` puts the wrappers in place before the domain's first allocation,
// every such pointer was made by `with_header`.

extern "C" fn malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let o = original(ctx);
    let (Some(f), Some(total)) = (o.malloc, size.checked_add(HEADER)) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `f` returned null or a fresh block of HEADER + size bytes.
    unsafe { with_header(f(o.ctx, total), size) }
}

extern "C" fn calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let o = original(ctx);
    let Some(size) = nelem.checked_mul(elsize) else {
        return std::ptr::null_mut();
    };
    let (Some(f), Some(total)) = (o.calloc, size.checked_add(HEADER)) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `f` returned null or a fresh block of HEADER + size bytes.
    unsafe { with_header(f(o.ctx, 1, total), size) }
}

extern "C" fn realloc(ctx: *mut c_void, ptr: *mut c_void, new_size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(ctx, new_size);
    }
    let o = original(ctx);
    let (Some(f), Some(total)) = (o.realloc, new_size.checked_add(HEADER)) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `ptr` is non-null, so `with_header` made it (see above the wrappers) and
    // it is live. On failure `f` leaves the old block as it was and we return null
    // without touching it; on success the old block is gone and the new one has room
    // for HEADER + new_size bytes, as `with_header` requires.
    unsafe {
        let (block, old) = header_of(ptr);
        let grown = f(o.ctx, block, total);
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
    // SAFETY: `ptr` is non-null, so `with_header` made it (see above the wrappers) and
    // it is live; the block under it goes back to the allocator that made it.
    let (block, size) = unsafe { header_of(ptr) };
    removed(size);
    if let Some(f) = o.free {
        f(o.ctx, block);
    }
}

/// Pre-initialises CPython and installs the counting wrappers. Must run before
/// `Python::initialize`; a later call, or a second one, does nothing.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once (ONCE), at load on the main thread, before the interpreter is
        // initialised (checked: a running one is left alone). Pre-initialisation uses
        // only the RAW domain, so the MEM and OBJ domains have allocated nothing yet when
        // the wrappers replace their allocators, and every block they will ever free
        // comes from a wrapper. ORIGINAL is set before the wrappers that read it are
        // installed. All-zero is a valid PyPreConfig (C ints) and PyMemAllocatorEx (null
        // ctx, no functions) before CPython fills them; the structs passed are valid for
        // each call, and CPython copies what it keeps.
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
            let domains = [
                PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
                PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
            ];
            let mut originals: [PyMemAllocatorEx; 2] = std::mem::zeroed();
            for (orig, domain) in originals.iter_mut().zip(domains) {
                pyo3::ffi::PyMem_GetAllocator(domain, orig);
            }
            if ORIGINAL.set(Originals(originals)).is_err() {
                return;
            }
            for (i, domain) in domains.into_iter().enumerate() {
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
    });
}
