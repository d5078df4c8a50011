//! RedisModuleStrings owned by module code, freed on drop.

use std::os::raw::c_char;

use redis_module::raw;

/// A RedisModuleString of ours, made without a context (no automatic memory), so it is
/// freed on drop and may outlive any context.
///
/// The pointer is private: the safe methods rely on it being a live string of ours, which
/// only `new` and `from_raw` (whose caller vouches for it) can make.
pub struct OwnedString {
    ptr: *mut raw::RedisModuleString,
}

impl OwnedString {
    pub fn new(bytes: &[u8]) -> OwnedString {
        // SAFETY: the buffer is valid for `len` bytes and Redis copies it. With no context
        // CreateString only allocates (no automatic memory, no shared state touched, so
        // any thread may call it) and the new string is ours to free (Drop).
        let ptr = unsafe {
            raw::RedisModule_CreateString.unwrap()(
                std::ptr::null_mut(),
                bytes.as_ptr() as *const c_char,
                bytes.len(),
            )
        };
        OwnedString { ptr }
    }

    /// Takes ownership of a string Redis handed to us.
    ///
    /// # Safety
    /// `ptr` is a live string that nobody else frees, made without automatic memory, and
    /// not shared with another thread.
    pub unsafe fn from_raw(ptr: *mut raw::RedisModuleString) -> OwnedString {
        OwnedString { ptr }
    }

    /// The string, to pass to the Redis API for the time of a call. Redis must not be
    /// left holding a reference to it once `self` is dropped.
    pub fn as_ptr(&self) -> *mut raw::RedisModuleString {
        self.ptr
    }

    pub fn bytes(&self) -> &[u8] {
        let mut len = 0usize;
        // SAFETY: `self.ptr` is a live string of ours (see the type); StringPtrLen returns
        // its buffer and length. The buffer lives as long as the string, which the borrow
        // of `self` keeps alive, and nothing writes to our strings.
        unsafe {
            let p = raw::RedisModule_StringPtrLen.unwrap()(self.ptr, &mut len);
            std::slice::from_raw_parts(p as *const u8, len)
        }
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        // SAFETY: ours (see `new` and `from_raw`), freed exactly once, here. Without
        // automatic memory, freeing without a context is what freeing with one does: it
        // drops our reference. OwnedString is not Send, so this is the thread that made it,
        // and Redis keeps no reference past the calls it was passed to (`as_ptr`).
        unsafe { raw::RedisModule_FreeString.unwrap()(std::ptr::null_mut(), self.ptr) };
    }
}
