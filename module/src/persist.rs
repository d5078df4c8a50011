//! Registrations in RDB files (and the RDB preamble of AOF rewrites): saved as the
//! sessions that made them (id, description, source text, which register() calls with
//! which ids) in module aux data, and re-created on load. Loading replaces what is in
//! memory, so DEBUG RELOAD does not double registrations.

use std::collections::BTreeMap;
use std::os::raw::c_int;

use redis_module::native_types::RedisType;
use redis_module::raw;

use crate::engine::execution::RunAs;
use crate::globals::globals;
#[cfg(feature = "python")]
use crate::python::script;
use crate::python::session;
use crate::wasm::guests;

/// 1: Python sessions; 2: then Wasm guests (name, description, bytes, ids by index);
/// 3: each session and guest then carries its owner (ACL user) and database;
/// 4: then the registrations' version (the number of the last change, see
/// `Registrations::version`), which tells a cluster's masters who has the newer set.
const ENCODING_VERSION: i32 = 4;

/// Whom code saved before owners were kept acts for.
fn legacy_owner() -> RunAs {
    RunAs::new("default", 0)
}

fn save_owner(rdb: *mut raw::RedisModuleIO, owner: &RunAs) {
    raw::save_string(rdb, &owner.user);
    raw::save_unsigned(rdb, owner.db as u64);
}

fn read_owner(rdb: *mut raw::RedisModuleIO, encver: c_int) -> Result<RunAs, String> {
    if encver < 3 {
        return Ok(legacy_owner());
    }
    let user = read_text(rdb)?;
    let db = read_u64(rdb)? as i32;
    Ok(RunAs::new(&user, db))
}

pub static GEARS_AUX: RedisType = RedisType::new(
    "gears-rs1",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: None,
        rdb_save: None,
        aof_rewrite: None,
        free: None,
        mem_usage: None,
        digest: None,
        aux_load: Some(aux_load),
        aux_save: Some(aux_save),
        aux_save2: None,
        aux_save_triggers: raw::Aux::Before as i32,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    },
);

/// A session to persist: (id, description, code, [(index, registration id)], owner).
pub type SavedSession = (String, Option<String>, String, Vec<(usize, String)>, RunAs);

pub fn sessions_to_save() -> Vec<SavedSession> {
    let mut by_session: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for r in globals().registrations.list() {
        if let Some(sid) = &r.session {
            by_session
                .entry(sid.clone())
                .or_default()
                .push((r.session_index, r.id.clone()));
        }
    }
    by_session
        .into_iter()
        .filter_map(|(sid, mut ids)| {
            let (desc, code, owner) = session::source(&sid)?;
            ids.sort();
            Some((sid, desc, code.to_string(), ids, owner))
        })
        .collect()
}

#[cfg(feature = "python")]
fn restore_session((sid, desc, code, ids, owner): SavedSession) {
    if let Err(e) = script::restore(&sid, desc, &code, ids, &owner) {
        redis_module::logging::log_warning(format!(
            "gears: session {sid} could not be re-created: {e}"
        ));
    }
}

/// Never called: without the Python host `globals().python` is false.
#[cfg(not(feature = "python"))]
fn restore_session(_: SavedSession) {}

/// A guest to persist: (name, description, component bytes, registration ids by index,
/// "" where one was unregistered, owner).
type SavedGuest = (
    String,
    Option<String>,
    std::sync::Arc<Vec<u8>>,
    Vec<String>,
    RunAs,
);

fn guests_to_save() -> Vec<SavedGuest> {
    guests::list()
        .into_iter()
        .map(|p| {
            let ids = guests::ids_of(&p);
            (
                p.name.clone(),
                p.desc.clone(),
                p.bytes.clone(),
                ids,
                p.owner.clone(),
            )
        })
        .collect()
}

fn save_guests(rdb: *mut raw::RedisModuleIO) {
    let saved = std::panic::catch_unwind(guests_to_save).unwrap_or_default();
    raw::save_unsigned(rdb, saved.len() as u64);
    for (name, desc, bytes, ids, owner) in saved {
        raw::save_string(rdb, &name);
        raw::save_unsigned(rdb, desc.is_some() as u64);
        raw::save_string(rdb, desc.as_deref().unwrap_or(""));
        raw::save_slice(rdb, &bytes);
        raw::save_unsigned(rdb, ids.len() as u64);
        for id in ids {
            raw::save_string(rdb, &id);
        }
        save_owner(rdb, &owner);
    }
}

/// A guest as read back: (name, description, component bytes, ids by index, owner).
type LoadedGuest = (String, Option<String>, Vec<u8>, Vec<String>, RunAs);

fn read_guests(rdb: *mut raw::RedisModuleIO, encver: c_int) -> Result<Vec<LoadedGuest>, String> {
    let n = read_u64(rdb)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let name = read_text(rdb)?;
        let has_desc = read_u64(rdb)? == 1;
        let desc = read_text(rdb)?;
        let bytes = raw::load_string_buffer(rdb)
            .map_err(|e| e.to_string())?
            .as_ref()
            .to_vec();
        let count = read_u64(rdb)?;
        let mut ids = Vec::new();
        for _ in 0..count {
            ids.push(read_text(rdb)?);
        }
        let owner = read_owner(rdb, encver)?;
        out.push((name, has_desc.then_some(desc), bytes, ids, owner));
    }
    Ok(out)
}

extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if when != raw::Aux::Before as c_int {
        return;
    }
    save_sessions(rdb);
    save_guests(rdb);
    raw::save_unsigned(rdb, globals().registrations.version());
}

fn save_sessions(rdb: *mut raw::RedisModuleIO) {
    let saved = std::panic::catch_unwind(sessions_to_save).unwrap_or_default();
    raw::save_unsigned(rdb, saved.len() as u64);
    for (sid, desc, code, ids, owner) in saved {
        raw::save_string(rdb, &sid);
        raw::save_unsigned(rdb, desc.is_some() as u64);
        raw::save_string(rdb, desc.as_deref().unwrap_or(""));
        raw::save_slice(rdb, code.as_bytes());
        raw::save_unsigned(rdb, ids.len() as u64);
        for (index, id) in ids {
            raw::save_unsigned(rdb, index as u64);
            raw::save_string(rdb, &id);
        }
        save_owner(rdb, &owner);
    }
}

fn read_text(rdb: *mut raw::RedisModuleIO) -> Result<String, String> {
    let buf = raw::load_string_buffer(rdb).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(buf.as_ref()).into_owned())
}

fn read_u64(rdb: *mut raw::RedisModuleIO) -> Result<u64, String> {
    raw::load_unsigned(rdb).map_err(|e| e.to_string())
}

fn read_sessions(rdb: *mut raw::RedisModuleIO, encver: c_int) -> Result<Vec<SavedSession>, String> {
    let n = read_u64(rdb)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let sid = read_text(rdb)?;
        let has_desc = read_u64(rdb)? == 1;
        let desc = read_text(rdb)?;
        let code = read_text(rdb)?;
        let count = read_u64(rdb)?;
        let mut ids = Vec::new();
        for _ in 0..count {
            let index = read_u64(rdb)? as usize;
            ids.push((index, read_text(rdb)?));
        }
        let owner = read_owner(rdb, encver)?;
        out.push((sid, has_desc.then_some(desc), code, ids, owner));
    }
    Ok(out)
}

extern "C" fn aux_load(rdb: *mut raw::RedisModuleIO, encver: c_int, when: c_int) -> c_int {
    if when != raw::Aux::Before as c_int {
        return raw::Status::Ok as c_int;
    }
    if encver > ENCODING_VERSION {
        redis_module::logging::log_warning(format!(
            "gears: the RDB holds registrations of a newer format ({encver} > {ENCODING_VERSION})"
        ));
        return raw::Status::Err as c_int;
    }
    let read = read_sessions(rdb, encver).and_then(|s| {
        let guests = if encver >= 2 {
            read_guests(rdb, encver)?
        } else {
            Vec::new()
        };
        let version = if encver >= 4 { read_u64(rdb)? } else { 0 };
        Ok((s, guests, version))
    });
    let (sessions, saved_guests, version) = match read {
        Ok(s) => s,
        Err(e) => {
            redis_module::logging::log_warning(format!("gears: cannot read registrations: {e}"));
            return raw::Status::Err as c_int;
        }
    };
    let restored = std::panic::catch_unwind(move || {
        // What is in memory is replaced by what the file holds.
        globals().registrations.clear();
        guests::clear();
        // A file older than versions, with registrations, is at least the first change.
        let legacy = version == 0 && !(sessions.is_empty() && saved_guests.is_empty());
        globals()
            .registrations
            .set_version(if legacy { 1 } else { version });
        for session in sessions {
            if !globals().python {
                redis_module::logging::log_warning(format!(
                    "gears: session {} is not re-created: Python is disabled",
                    session.0
                ));
                continue;
            }
            restore_session(session);
        }
        for (name, desc, bytes, ids, owner) in saved_guests {
            if let Err(e) = guests::install(&name, desc, bytes, true, Some(ids), owner) {
                redis_module::logging::log_warning(format!(
                    "gears: guest {name} could not be re-created: {e}"
                ));
            }
        }
    });
    if restored.is_err() {
        redis_module::logging::log_warning("gears: re-creating registrations panicked");
    }
    raw::Status::Ok as c_int
}
