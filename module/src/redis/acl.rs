//! Checking a command against an ACL user's permissions, for calls made on that user's
//! behalf by code it sent (a recipe, a guest, a registration).
//!
//! Redis checks the permissions of a client's own commands; a module's calls run on a
//! client with no user and are never checked. So before every call of user code, the
//! door (`door.rs`) asks here whether the owner of that code may run it: the command,
//! its subcommand, its keys and its channels (RedisModule_ACLCheckCommandPermissions,
//! Redis 7.0+). The user is looked up by name on every check: a user object kept between
//! checks could be freed by ACL DELUSER while the lock is given back, and a look-up is a
//! tree search plus one small allocation.
//!
//! A user allowed everything (`+@all ~* &*`, no selectors, as the default user is) needs
//! no check per call: each thread remembers which users are, until an ACL command may
//! have changed them (the command filter and the door report ACL and EXEC commands).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::raw;

use super::arity;
use super::call::call;
use super::lock;
use super::string::OwnedString;
use crate::engine::value::Value;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Forgets what is known of users' permissions (an ACL command may run).
pub fn users_may_have_changed() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

thread_local! {
    /// Whether a user is allowed everything, as of a generation. A handful of users at
    /// most per thread: a list beats hashing the name on every call.
    static UNRESTRICTED: RefCell<Vec<(String, u64, bool)>> = const { RefCell::new(Vec::new()) };
}

/// ACL GETUSER says `user` may run every command on every key and channel.
fn allowed_everything(user: &str) -> bool {
    let Value::List(fields) = call(&lock::context(), &[b"ACL", b"GETUSER", user.as_bytes()]) else {
        return false;
    };
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|kv| matches!(&kv[0], Value::Str(k) if k == name))
            .and_then(|kv| kv.get(1))
    };
    let is = |name: &str, want: &str| matches!(field(name), Some(Value::Str(v)) if v == want);
    let no_selectors = match field("selectors") {
        Some(Value::List(s)) => s.is_empty(),
        None => true,
        _ => false,
    };
    is("commands", "+@all") && is("keys", "~*") && is("channels", "&*") && no_selectors
}

fn unrestricted(user: &str) -> bool {
    let generation = GENERATION.load(Ordering::Acquire);
    let known = UNRESTRICTED.with(|u| {
        u.borrow()
            .iter()
            .find(|(name, g, _)| *g == generation && name == user)
            .map(|(_, _, v)| *v)
    });
    if let Some(v) = known {
        return v;
    }
    let v = allowed_everything(user);
    UNRESTRICTED.with(|u| {
        let mut u = u.borrow_mut();
        u.retain(|(name, g, _)| *g == generation && name != user);
        u.push((user.to_string(), generation, v));
    });
    v
}

/// An ACL user looked up by name, released on drop.
struct User(*mut raw::RedisModuleUser);

impl Drop for User {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a non-null user GetModuleUserFromUserName returned (`check`
        // and `user_exists` wrap nothing else), freed once, here, on the thread that still
        // holds the lock it was looked up under (User lives within either). Freeing the module user does
        // not touch the ACL user it refers to.
        unsafe { raw::RedisModule_FreeModuleUser.unwrap()(self.0) };
    }
}

/// Whether an ACL user of this name exists (code restored from elsewhere keeps its owner,
/// who must exist here). The Redis lock must be held.
pub fn user_exists(user: &str) -> bool {
    // SAFETY: the API table (redis/mod.rs): written once at load, only read afterwards;
    // the look-up is optional (Redis 7.0+), hence matched. Without it no owner can be
    // checked, nor any call of code (`check` refuses them all): say it exists.
    let Some(lookup) = (unsafe { raw::RedisModule_GetModuleUserFromUserName }) else {
        return true;
    };
    let name = OwnedString::new(user.as_bytes());
    // SAFETY: the Redis lock is held (this function's contract), as the look-up walks the
    // server's ACL users; `name` is a live string for the call. The user returned (or
    // NULL) is ours to free: `User` frees it at once.
    let found = unsafe { lookup(name.as_ptr()) };
    if found.is_null() {
        return false;
    }
    drop(User(found));
    true
}

/// Whether `user` may run `args` (command name first). `Err` is the error reply: NOPERM
/// naming the user, or Redis's arity error (checked first: the ACL check relies on it).
/// An unknown command passes: running it gives Redis's own "unknown command" error. The
/// Redis lock must be held.
pub fn check(user: &str, args: &[&[u8]]) -> Result<(), String> {
    if unrestricted(user) || !arity::check(args)? {
        return Ok(());
    }
    // SAFETY: the API table (redis/mod.rs): written once by RedisModule_Init at load,
    // before any command or thread of ours runs, and only read afterwards. These two are
    // optional (Redis 7.0+), hence matched rather than unwrapped.
    let apis = unsafe {
        (
            raw::RedisModule_GetModuleUserFromUserName,
            raw::RedisModule_ACLCheckCommandPermissions,
        )
    };
    let (Some(lookup), Some(check_cmd)) = apis else {
        return Err("NOPERM this server has no ACL check for modules (Redis 7.0+ needed)".into());
    };
    let name = OwnedString::new(user.as_bytes());
    // SAFETY: the Redis lock is held (this function's contract; its callers, the door and
    // RG.INNERHOOK, run with it), as the look-up walks the server's ACL users. `name` is a
    // live string for the call; the user returned (or NULL) is ours to free (`User`).
    let found = unsafe { lookup(name.as_ptr()) };
    if found.is_null() {
        return Err(format!(
            "NOPERM the ACL user '{user}' that owns this code does not exist any more"
        ));
    }
    let found = User(found);
    let strings: Vec<OwnedString> = args.iter().map(|a| OwnedString::new(a)).collect();
    let mut argv: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.as_ptr()).collect();
    // SAFETY: the Redis lock is held (see above). `found` is a live module user, `argv`
    // holds `argv.len()` live strings that outlive the call (`strings` owns them), and
    // the command's arity was checked above: Redis reads keys and channels at the
    // positions the command's spec gives without bounds checks. errno is read right after.
    let status = unsafe { check_cmd(found.0, argv.as_mut_ptr(), argv.len() as i32) };
    if status == raw::REDISMODULE_OK as i32
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT)
    {
        return Ok(());
    }
    let command =
        String::from_utf8_lossy(args.first().copied().unwrap_or_default()).to_ascii_lowercase();
    Err(format!(
        "NOPERM user '{user}' has no permissions to run this '{command}' call (the command, \
         a subcommand, a key or a channel is not allowed to this user)"
    ))
}
