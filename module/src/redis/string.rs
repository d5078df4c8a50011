//! RedisModuleStrings owned by module code, freed on drop.

use std::os::raw::c_char;

use redis_module::raw;

/// A RedisModuleString of ours, made without a context (no automatic memory), so it is
/// freed on drop and may outlive any context.
pub struct OwnedString {
    pub ptr: *mut raw::RedisModuleString,
}

impl OwnedString {
    pub fn new(bytes: &[u8]) -> OwnedString {
        // SAFETY: the buffer is valid for `len` bytes; Redis copies it. Without a context
        // the string is ours to free (Drop).
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
    /// `ptr` is a live string that nobody else frees, made without automatic memory.
    pub unsafe fn from_raw(ptr: *mut raw::RedisModuleString) -> OwnedString {
        OwnedString { ptr }
    }

    pub fn bytes(&self) -> &[u8] {
        let mut len = 0usize;
        // SAFETY: `ptr` is a live string; the returned buffer lives as long as it does,
        // which the borrow of `self` guarantees.
        unsafe {
            let p = raw::RedisModule_StringPtrLen.unwrap()(self.ptr, &mut len);
            std::slice::from_raw_parts(p as *const u8, len)
        }
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        // SAFETY: ours (see `new` and `from_raw`), freed exactly once, here. Without
        // automatic memory, freeing without a context is what freeing with one does.
        unsafe { raw::RedisModule_FreeString.unwrap()(std::ptr::null_mut(), self.ptr) };
    }
}
