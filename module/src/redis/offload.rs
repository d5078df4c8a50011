//! A command's slow part off the main thread: the client waits blocked while a helper
//! thread compiles a guest, or waits for the other masters to stage a change; what must
//! touch Redis there takes the lock (`lock::context`), and the blocked client is answered
//! from that thread. One helper thread serves every such command in turn, so slow
//! commands never multiply threads, and no worker of the pool waits on the network.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type Task = Box<dyn FnOnce() + Send>;

static HELPER: OnceLock<Result<Mutex<Sender<Task>>, String>> = OnceLock::new();

fn helper() -> Result<&'static Mutex<Sender<Task>>, String> {
    HELPER
        .get_or_init(|| {
            let (tx, rx) = channel::<Task>();
            std::thread::Builder::new()
                .name("gears-offload".into())
                .spawn(move || {
                    be_nice();
                    // Each task catches its own panics: the thread outlives them.
                    for task in rx {
                        task();
                    }
                })
                .map(|_| Mutex::new(tx))
                .map_err(|e| format!("cannot start the helper thread: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Lowers the helper's CPU priority (and that of threads it starts, such as the
/// compiler's pool): on a small machine the main thread must win the CPU, or other
/// clients wait for the compile anyway (PINGs of 300 ms were measured without this).
fn be_nice() {
    // SAFETY: gettid takes no arguments; setpriority(PRIO_PROCESS, tid) on Linux changes
    // the nice value of that one thread, this one. Plain integers only, no memory passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Runs `task` on the helper thread, after the commands queued before it: work that may
/// wait (for other masters) without holding a worker of the pool. `task` catches nothing:
/// it must not panic (a panic is caught and logged here, and the thread goes on).
pub fn in_background(task: impl FnOnce() + Send + 'static) -> Result<(), String> {
    let helper = helper()?;
    let task: Task = Box::new(move || {
        if catch_unwind(AssertUnwindSafe(task)).is_err() {
            redis_module::logging::log(
                redis_module::logging::RedisLogLevel::Warning,
                "gears: a background task panicked (a bug was caught)",
            );
        }
    });
    helper
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(task)
        .map_err(|_| "ERR the helper thread is gone".to_string())
}
