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
//! Always on once the Wasm runtime starts; SIGBUS is left alone (wasmtime uses it only on
//! macOS and FreeBSD).

use std::sync::OnceLock;

/// The signals wasmtime handles on Linux (SIGFPE only on x86_64; taking it elsewhere too
/// only hands it back).
const SIGNALS: [libc::c_int; 3] = [libc::SIGSEGV, libc::SIGILL, libc::SIGFPE];

/// Redis's dispositions of [`SIGNALS`], in that order, as they were before the engine.
struct Dispositions([libc::sigaction; 3]);

static REDIS: OnceLock<Dispositions> = OnceLock::new();

/// Keeps Redis's dispositions of the trap signals and puts [`hand_back`] in their place.
/// Call once, before the first `wasmtime::Engine` (which installs wasmtime's handlers over
/// whatever is there); later calls do nothing.
pub fn install() -> std::io::Result<()> {
    if REDIS.get().is_some() {
        return Ok(());
    }
    // SAFETY: an all-zero `sigaction` is a valid value (SIG_DFL, empty mask, no flags).
    let mut redis: [libc::sigaction; 3] = unsafe { std::mem::zeroed() };
    for (sig, slot) in SIGNALS.iter().zip(redis.iter_mut()) {
        // SAFETY: reads the disposition into a valid, writable `sigaction`; a null new
        // action changes nothing.
        if unsafe { libc::sigaction(*sig, std::ptr::null(), slot) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // Saved before `hand_back` can run: it reads them.
    if REDIS.set(Dispositions(redis)).is_err() {
        return Ok(());
    }
    // SAFETY: as above, all-zero is a valid `sigaction` to fill in.
    let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
    ours.sa_sigaction = hand_back as *const () as libc::sighandler_t;
    // The flags wasmtime's own handler has; it calls this one as a function anyway.
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
    for sig in SIGNALS {
        // SAFETY: `ours` is a valid action whose handler has the SA_SIGINFO signature;
        // sigemptyset and sigaction only touch the struct given and the process's table.
        let failed = unsafe {
            libc::sigemptyset(&mut ours.sa_mask);
            libc::sigaction(sig, &ours, std::ptr::null_mut()) != 0
        };
        if failed {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What wasmtime calls for a signal that is not a guest's trap: Redis's disposition goes
/// back, and the signal is taken again by it. Async-signal-safe: an atomic load, a read
/// of data written before this handler was installed, and system calls.
extern "C" fn hand_back(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let Some(redis) = REDIS.get() else {
        return;
    };
    let Some(i) = SIGNALS.iter().position(|s| *s == sig) else {
        return;
    };
    // SAFETY: `redis.0[i]` is the disposition sigaction gave for `sig` in `install`.
    unsafe { libc::sigaction(sig, &redis.0[i], std::ptr::null_mut()) };
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
