//! ACL categories of the RG.* commands, where the server lets a module set them.
//!
//! Why: an administrator writes `-@dangerous` and expects that to remove whatever runs
//! arbitrary code or changes the configuration. Redis 7.0 puts module commands in no
//! category, so there the README gives explicit rules instead; Redis 7.2+ and Valkey 8
//! have RedisModule_SetCommandACLCategories, and Redis 7.4+ and Valkey 8
//! RedisModule_AddACLCategory, for a `gears` category holding every RG.* command.
//! Both may only be called while the module loads, after its commands exist.
//!
//! RG.INNERHOOK is what a hooked command becomes before Redis checks its permissions:
//! it joins every category a client's own commands are in (not admin, dangerous or
//! blocking), so a user allowed `@read` can still run a hooked GET; the hook then checks
//! the user's permissions for the command it sent.

use std::ffi::CString;

use redis_module::{raw, Context};

/// The gears category, where the server can add one.
const GEARS: &str = "gears";

/// Categories per command (without `gears`, added where it exists).
pub(super) const CATEGORIES: &[(&str, &str)] = &[
    ("rg.pyexecute", "admin dangerous slow"),
    ("rg.configset", "admin dangerous slow"),
    ("rg.unregister", "admin dangerous slow"),
    ("rg.pauseregistrations", "admin dangerous slow"),
    ("rg.unpauseregistrations", "admin dangerous slow"),
    ("rg.clearregistrationsstats", "admin dangerous slow"),
    ("rg.innerregister", "admin dangerous slow"),
    ("rg.innerwasm", "admin dangerous slow"),
    // Code as data (FUNCTION DUMP / RESTORE / FLUSH): a dump holds every owner's code,
    // a restore installs code that runs as its owners.
    ("rg.dumpcode", "admin dangerous slow"),
    ("rg.restorecode", "admin dangerous slow"),
    ("rg.flushcode", "admin dangerous slow"),
    // Installs packages whose code sessions then import.
    ("rg.pyimportreq", "admin dangerous slow"),
    ("rg.pydumpreqs", "read slow"),
    ("rg.pyprofile", "read slow"),
    ("rg.pyexportreq", "read slow"),
    ("rg.getexecution", "read slow"),
    ("rg.getresults", "read slow"),
    ("rg.dumpexecutions", "read slow"),
    ("rg.dumpregistrations", "read slow"),
    ("rg.configget", "read slow"),
    ("rg.wasmlist", "read slow"),
    ("rg.pystats", "read slow"),
    ("rg.pydumpsessions", "read slow"),
    ("rg.getresultsblocking", "blocking slow"),
    ("rg.dropexecution", "slow"),
    ("rg.abortexecution", "slow"),
    ("rg.trigger", "write slow"),
    ("rg.triggeronkey", "write slow"),
    ("rg.wasmrun", "write slow"),
    ("rg.wasmupload", "write slow"),
    ("rg.wasmdelete", "write slow"),
    ("rg.infocluster", "read slow"),
    ("rg.refreshcluster", "slow"),
    // What a peer sends: a run's plan and records. Only peers may (masteruser).
    ("rg.hello", "admin dangerous fast"),
    ("rg.innermsg", "admin dangerous fast"),
    (
        "rg.innerhook",
        "keyspace read write set sortedset list hash string bitmap hyperloglog geo stream \
         pubsub fast slow connection transaction scripting",
    ),
];

/// What the server offered, for the load log line.
pub struct Applied {
    pub categories: bool,
    pub gears_category: bool,
}

/// Sets the categories (during load, after the commands were created).
pub fn apply(ctx: &Context) -> Result<Applied, String> {
    // SAFETY: the API table (redis/mod.rs): filled by RedisModule_Init before this runs
    // at load, only read. All three are optional (Redis 7.2+ / 7.4+, Valkey 8), hence
    // matched rather than unwrapped.
    let (add, get, set) = unsafe {
        (
            raw::RedisModule_AddACLCategory,
            raw::RedisModule_GetCommand,
            raw::RedisModule_SetCommandACLCategories,
        )
    };
    let caps = crate::redis::capabilities::get();
    let add = add.filter(|_| caps.acl_category_add);
    let (Some(get), Some(set), true) = (get, set, caps.acl_categories) else {
        return Ok(Applied {
            categories: false,
            gears_category: false,
        });
    };
    let gears_category = match add {
        Some(add) => {
            let name = CString::new(GEARS).map_err(|e| e.to_string())?;
            // SAFETY: `ctx` is the load context on the main thread during OnLoad (the
            // `Context` convention, redis/mod.rs), the only time AddACLCategory may be
            // called; `name` is a NUL-terminated string that outlives the call.
            unsafe { add(ctx.ctx, name.as_ptr()) == raw::REDISMODULE_OK as i32 }
        }
        None => false,
    };
    for (command, categories) in CATEGORIES {
        let categories = if gears_category && *command != "rg.innerhook" {
            format!("{categories} {GEARS}")
        } else {
            categories.to_string()
        };
        let name = CString::new(*command).map_err(|e| e.to_string())?;
        let value = CString::new(categories.as_str()).map_err(|e| e.to_string())?;
        // SAFETY: `ctx` is the load context on the main thread during OnLoad (as above).
        // GetCommand returns NULL for a command this module did not create (checked), else
        // a handle Redis keeps for the module's life; both strings are NUL-terminated and
        // outlive the calls.
        let status = unsafe {
            let cmd = get(ctx.ctx, name.as_ptr());
            if cmd.is_null() {
                return Err(format!("command {command} not found"));
            }
            set(cmd, value.as_ptr())
        };
        if status != raw::REDISMODULE_OK as i32 {
            return Err(format!(
                "the server refused categories '{categories}' for {command}"
            ));
        }
    }
    Ok(Applied {
        categories: true,
        gears_category,
    })
}
