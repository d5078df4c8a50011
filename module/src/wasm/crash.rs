//! Signals-based traps for guests without taking Redis's crash report away.
//!
//! Why: with signals-based traps wasmtime leaves a guest's memory accesses unchecked (a
//! 4 GiB reservation with guard pages turns an access out of bounds into a SIGSEGV) and
//! lets the processor trap on `unreachable` (SIGILL) and on division by zero (SIGFPE);
//! explicit checks instead made guest loops slower. wasmtime installs its handlers over
//! Redis's and calls the handler it replaced, as a plain function, for every signal that
//! is not a guest's trap. Redis's handler expects to be the kernel's: its report then
//! starts in the module's code, blaming it for any crash, and its SA_RESETHAND is lost
//! (wasmtime's handler has SA_NODEFER and is never reset), so a fault inside the report
//! entered it again, report after report: 100 MB of log for one crash.
//!
//! How: [`install`] runs just before the engine is built, so before wasmtime installs its
//! handlers. It keeps Redis's dispositions and puts [`hand_back`] in their place; wasmtime
//! then keeps `hand_back` as the handler before its own. A guest's trap never reaches it
//! (wasmtime handles it); anything else does, and `hand_back` puts Redis's disposition back
//! as it was and returns: the faulting instruction runs again and faults straight into
//! Redis's own handler, with Redis's flags, as in a server without the module.
//!
//! What stays the same: one crash report, with the registers and stack of the fault, for
//! a crash anywhere (the main thread, a worker inside a guest's host call, Python); a
//! crash with crash reporting off still ends the process with the signal; a SIGSEGV sent
//! with kill() (no instruction to run again) is sent again, with who sent it, once
//! Redis's handler is back.
//! What differs: once the first crash has handed the signal back, a guest's trap on
//! another thread at that moment is a crash too (the process is ending anyway).
//!
//! `CONFIG SET crash-log-enabled` makes Redis install its handlers (or the defaults) again,
//! over wasmtime's: a guest's next trap would have ended the process. After every
//! configuration change [`rearm`] keeps what Redis installed as the dispositions to hand
//! back to, and puts wasmtime's handlers back on top.
//!
//! Always on once the Wasm runtime starts; SIGBUS is left alone (wasmtime uses it only on
//! macOS and FreeBSD).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The signals wasmtime handles on Linux (SIGFPE only on x86_64; taking it elsewhere too
/// only hands it back).
const SIGNALS: [libc::c_int; 3] = [libc::SIGSEGV, libc::SIGILL, libc::SIGFPE];

type Dispositions = [libc::sigaction; 3];

/// Redis's dispositions of [`SIGNALS`], in that order: the ones `hand_back` restores.
/// Two copies, the live one named by `live` (0: none yet), so that a writer never
/// changes the copy a signal handler may be reading; writers take `write`.
struct Saved {
    copies: [UnsafeCell<Dispositions>; 2],
    live: AtomicUsize,
    write: Mutex<()>,
}

// SAFETY: the copies are written only under `write`, and only the copy `live` does not
// name; `live` is published with Release after the write and read with Acquire.
unsafe impl Sync for Saved {}

static REDIS: Saved = Saved {
    // SAFETY: an all-zero `sigaction` is a valid value (SIG_DFL, empty mask, no flags).
    copies: [
        UnsafeCell::new(unsafe { std::mem::zeroed() }),
        UnsafeCell::new(unsafe { std::mem::zeroed() }),
    ],
    live: AtomicUsize::new(0),
    write: Mutex::new(()),
};

impl Saved {
    /// Makes `d` the dispositions `hand_back` restores.
    fn publish(&self, d: Dispositions) {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let next = if self.live.load(Ordering::Acquire) == 1 {
            1
        } else {
            0
        };
        // SAFETY: under `write`, and copy `next` is not the live one (`live` is 0 or 1
        // for copy 0, 2 for copy 1): no handler reads it until `live` names it.
        unsafe { *self.copies[next].get() = d };
        self.live.store(next + 1, Ordering::Release);
    }

    /// The live dispositions, if any were saved.
    fn get(&self) -> Option<&Dispositions> {
        let live = self.live.load(Ordering::Acquire);
        // SAFETY: the live copy is written only before `live` names it (Release/Acquire)
        // and not again while it is live.
        self.copies
            .get(live.checked_sub(1)?)
            .map(|c| unsafe { &*c.get() })
    }
}

/// wasmtime's own actions, as the engine installed them (for putting them back).
static WASMTIME: OnceLock<Dispositions> = OnceLock::new();

/// The dispositions of [`SIGNALS`] now.
fn current() -> std::io::Result<Dispositions> {
    // SAFETY: an all-zero `sigaction` is a valid value to fill in.
    let mut now: Dispositions = unsafe { std::mem::zeroed() };
    for (sig, slot) in SIGNALS.iter().zip(now.iter_mut()) {
        // SAFETY: reads the disposition into a valid, writable `sigaction`; a null new
        // action changes nothing.
        if unsafe { libc::sigaction(*sig, std::ptr::null(), slot) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(now)
}

/// Installs `actions` for [`SIGNALS`].
fn set(actions: &Dispositions) -> std::io::Result<()> {
    for (sig, action) in SIGNALS.iter().zip(actions) {
        // SAFETY: each action is one sigaction gave us, or ours (a handler with the
        // SA_SIGINFO signature); sigaction only changes the process's table.
        if unsafe { libc::sigaction(*sig, action, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Keeps Redis's dispositions of the trap signals and puts [`hand_back`] in their place.
/// Call once, before the first `wasmtime::Engine` (which installs wasmtime's handlers over
/// whatever is there), then [`armed`] once it is built.
pub fn install() -> std::io::Result<()> {
    // Saved before `hand_back` can run: it reads them.
    REDIS.publish(current()?);
    // SAFETY: as above, all-zero is a valid `sigaction` to fill in.
    let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
    ours.sa_sigaction = hand_back as *const () as libc::sighandler_t;
    // The flags wasmtime's own handler has; it calls this one as a function anyway.
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
    // SAFETY: fills in the mask of a valid struct.
    unsafe { libc::sigemptyset(&mut ours.sa_mask) };
    set(&[ours; 3])
}

/// Notes wasmtime's handlers, just installed by the engine, for [`rearm`].
pub fn armed() -> std::io::Result<()> {
    let now = current()?;
    let _ = WASMTIME.set(now);
    Ok(())
}

/// After Redis installed its own handlers again (`CONFIG SET crash-log-enabled` does, over
/// wasmtime's, and a guest's next trap would then end the process): keeps them as the
/// ones to hand back to and puts wasmtime's back on top. Main thread (a config event).
pub fn rearm() -> std::io::Result<()> {
    let Some(wasmtime) = WASMTIME.get() else {
        return Ok(()); // no engine yet: `install` will keep whatever is there then
    };
    let now = current()?;
    let unchanged = now
        .iter()
        .zip(wasmtime)
        .all(|(n, w)| n.sa_sigaction == w.sa_sigaction);
    if unchanged {
        return Ok(());
    }
    let mut redis = *REDIS.get().unwrap_or(&now);
    for ((slot, n), w) in redis.iter_mut().zip(&now).zip(wasmtime) {
        if n.sa_sigaction != w.sa_sigaction {
            *slot = *n;
        }
    }
    REDIS.publish(redis);
    set(wasmtime)
}

/// Any configuration change: `crash-log-enabled` makes Redis install its handlers again
/// (or the defaults), over wasmtime's; three sigaction calls tell.
#[linkme::distributed_slice(redis_module::server_events::CONFIG_CHANGED_SERVER_EVENTS_LIST)]
fn on_config_change(ctx: &redis_module::Context, _names: &[&str]) {
    if let Err(e) = rearm() {
        ctx.log_warning(&format!(
            "gears: could not put the guests' trap handlers back: {e}"
        ));
    }
}

/// What wasmtime calls for a signal that is not a guest's trap: Redis's disposition goes
/// back, and the signal is taken again by it. Async-signal-safe: an atomic load, a read
/// of the live copy of Redis's dispositions (never written while live), and system calls.
extern "C" fn hand_back(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let i = SIGNALS.iter().position(|s| *s == sig);
    let Some(action) = REDIS.get().zip(i).and_then(|(redis, i)| redis.get(i)) else {
        return;
    };
    // SAFETY: `action` is Redis's disposition of `sig` as sigaction gave it.
    unsafe { libc::sigaction(sig, action, std::ptr::null_mut()) };
    // A fault runs its instruction again on return and so reaches Redis's handler; a
    // signal that kill(), tgkill() or sigqueue() sent (si_code ≤ 0) would be lost.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler, and wasmtime
    // passes on the one it got; null is checked all the same.
    let sent = info.is_null() || unsafe { (*info).si_code } <= 0;
    if sent {
        resend(sig, info);
    }
}

/// Sends `sig` to this thread again with its own siginfo (a process may give itself any
/// si_code), so Redis's handler still says who sent it; plain raise() if that fails.
fn resend(sig: libc::c_int, info: *mut libc::siginfo_t) {
    // SAFETY: getpid, gettid, rt_tgsigqueueinfo and raise are async-signal-safe system
    // calls; `info` is the siginfo of this delivery (or null, refused with EFAULT).
    unsafe {
        let pid = libc::getpid();
        let tid = libc::syscall(libc::SYS_gettid);
        if libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, sig, info) != 0 {
            libc::raise(sig);
        }
    }
}
