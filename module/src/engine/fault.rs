//! Fault injection for the tests: a panic at a chosen point of a run, once; or a real
//! crash inside a call into Redis, for the test of Redis's crash report.
//!
//! The black-box tests prove that a panic anywhere in a run fails only that execution,
//! gives the Redis lock back and answers the client. They start redis-server with
//! `GEARS_TEST_PANIC=<point>` in its environment (read once, at load); the first run that
//! reaches that point panics there, later ones do not. Unset (always, outside the
//! tests), each point costs one relaxed atomic load.

use std::sync::atomic::{AtomicU8, Ordering};

/// Where a run can be made to panic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Point {
    /// Before the reader gives a batch.
    Reader = 1,
    /// Before an operator runs a batch.
    Step = 2,
    /// Inside a call into Redis (execute()).
    HostCall = 3,
    /// While the results become a reply.
    Reply = 4,
    /// Inside a call into Redis, a real SIGSEGV instead of a panic: Redis's crash report
    /// must come out once, also from a guest's host call (wasm/crash.rs).
    HostCallCrash = 5,
}

static ARMED: AtomicU8 = AtomicU8::new(0);

impl Point {
    pub fn parse(s: &str) -> Option<Point> {
        Some(match s {
            "reader" => Point::Reader,
            "step" => Point::Step,
            "host-call" => Point::HostCall,
            "reply" => Point::Reply,
            "host-call-crash" => Point::HostCallCrash,
            _ => return None,
        })
    }
}

/// Arms `point`: the next run that reaches it panics.
pub fn arm(point: Point) {
    ARMED.store(point as u8, Ordering::Release);
}

/// Panics if `point` is armed (and disarms it); crashes at a host call if armed so.
#[inline]
pub fn hit(point: Point) {
    let armed = ARMED.load(Ordering::Relaxed);
    if armed == 0 {
        return;
    }
    if point == Point::HostCall && armed == Point::HostCallCrash as u8 {
        crash();
    }
    if armed == point as u8
        && ARMED
            .compare_exchange(point as u8, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    {
        panic!("injected fault at {point:?} (GEARS_TEST_PANIC)");
    }
}

/// A write to a page mapped without access: the SIGSEGV of a real bug.
#[cold]
fn crash() -> ! {
    // SAFETY: none, on purpose, and only under GEARS_TEST_PANIC=host-call-crash: the
    // volatile write to a PROT_NONE page faults, and the process ends in Redis's handler.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        page.cast::<u8>().write_volatile(1);
    }
    std::process::abort()
}
