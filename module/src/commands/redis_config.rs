//! The module's settings as Redis's own configuration: `CONFIG GET rg.*`, `CONFIG SET
//! rg.batchsize 100`, `rg.batchsize 100` in redis.conf, kept by `CONFIG REWRITE`.
//!
//! Why: operators manage a server through its configuration file and CONFIG; RG.CONFIGSET
//! changes are lost at restart. What stays the same: one set of values (`config`), which
//! RG.CONFIGGET / RG.CONFIGSET and the load arguments read and write as before, with the
//! same bounds and the same load-only entries (ExecutionThreads, PythonEnabled: read-only
//! to CONFIG SET). What differs: the names are the entries' in lower case under the
//! module's name, `rg.` (Redis prefixes a module's configuration with its name, and
//! RedisGears 1.2's tools know the module as `rg`); the load-only text entries
//! (ClusterUser, ClusterPassword, ClusterSecret) stay load arguments. When it is off:
//! a server without module configuration (none of those supported) logs it at load.
//!
//! Order at load: the load arguments are applied first, then each entry is registered
//! with its current value as Redis's default, then RedisModule_LoadConfigs applies what
//! redis.conf says; so a line in redis.conf wins over a load argument, and a load
//! argument over the built-in default.

use std::ffi::{c_char, c_int, c_longlong, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use redis_module::{raw, Context};

use crate::config::{self, ENTRIES};

/// Set while RedisModule_LoadConfigs runs: load-only entries may be set then.
static LOADING: AtomicBool = AtomicBool::new(false);

/// The configuration name of entry `name` (without the module's prefix).
fn config_name(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Registers every numeric entry and applies redis.conf's values. False when the server
/// has no module configuration.
pub fn register(ctx: &Context) -> Result<bool, String> {
    // SAFETY: the API table (redis/mod.rs): filled by RedisModule_Init before this runs
    // at load, only read; matched because a server may lack them.
    let (register, load) = unsafe {
        (
            raw::RedisModule_RegisterNumericConfig,
            raw::RedisModule_LoadConfigs,
        )
    };
    let (Some(register), Some(load), true) = (
        register,
        load,
        crate::redis::capabilities::get().module_configs,
    ) else {
        return Ok(false);
    };
    for (i, entry) in ENTRIES.iter().enumerate() {
        let name = CString::new(config_name(entry.name)).map_err(|e| e.to_string())?;
        let flags = match entry.runtime {
            true => raw::REDISMODULE_CONFIG_DEFAULT,
            false => raw::REDISMODULE_CONFIG_IMMUTABLE,
        };
        // SAFETY: `ctx` is the load context on the main thread during OnLoad (the
        // `Context` convention, redis/mod.rs), where configs are registered; `name` is
        // NUL-terminated and Redis copies it; the callbacks are plain functions that
        // live as long as the module; `privdata` is the entry's index, never
        // dereferenced.
        let status = unsafe {
            register(
                ctx.ctx,
                name.as_ptr(),
                config::get_index(i),
                flags,
                entry.min,
                entry.max,
                Some(get),
                Some(set),
                None,
                i as *mut c_void,
            )
        };
        if status != raw::REDISMODULE_OK as c_int {
            return Err(format!("the server refused the setting rg.{}", entry.name));
        }
    }
    LOADING.store(true, Ordering::Release);
    // SAFETY: as above, the load context during OnLoad, after the registrations.
    let status = unsafe { load(ctx.ctx) };
    LOADING.store(false, Ordering::Release);
    if status != raw::REDISMODULE_OK as c_int {
        return Err("redis.conf has a bad rg.* setting (the line above says which)".into());
    }
    Ok(true)
}

/// CONFIG GET's value of the entry whose index is `privdata`.
extern "C" fn get(_name: *const c_char, privdata: *mut c_void) -> c_longlong {
    config::get_index(privdata as usize)
}

/// CONFIG SET (or redis.conf at load) of the entry whose index is `privdata`: the same
/// checks as RG.CONFIGSET.
extern "C" fn set(
    _name: *const c_char,
    value: c_longlong,
    privdata: *mut c_void,
    err: *mut *mut raw::RedisModuleString,
) -> c_int {
    let Some(entry) = ENTRIES.get(privdata as usize) else {
        return raw::REDISMODULE_ERR as c_int;
    };
    let at_load = LOADING.load(Ordering::Acquire);
    match config::set_by_name(entry.name, &value.to_string(), at_load) {
        Ok(_) => {
            if !at_load {
                crate::redis::log::notice(&format!("config {}", entry.name), || {
                    format!("CONFIG SET rg.{} {value}", config_name(entry.name))
                });
            }
            raw::REDISMODULE_OK as c_int
        }
        Err(e) => {
            if !err.is_null() {
                let text = e.replace(['\r', '\n'], " ");
                // SAFETY: `err` is Redis's out-parameter for this call (checked non-null);
                // RedisModule_CreateString with a NULL context makes a string Redis frees
                // after it has used it as the error, as the API says for this callback.
                // The API table is filled at load (redis/mod.rs).
                unsafe {
                    if let Some(create) = raw::RedisModule_CreateString {
                        *err = create(std::ptr::null_mut(), text.as_ptr().cast(), text.len());
                    }
                }
            }
            raw::REDISMODULE_ERR as c_int
        }
    }
}
