//! The worker pool that runs async executions.

use crossbeam_channel::{unbounded, Sender};

type Job = Box<dyn FnOnce() + Send>;

/// A worker's stack. Python steps recurse on it (CPython 3.11 recursion through C
/// functions takes up to about 3.2 KB per level: the default limit of 1000 alone
/// overflowed Rust's default 2 MB); only the pages touched are ever resident.
pub const WORKER_STACK: usize = 64 << 20;

pub struct Pool {
    jobs: Sender<Job>,
}

impl Pool {
    /// Starts `threads` workers; each runs `on_start` once before taking jobs.
    pub fn new(threads: usize, on_start: fn()) -> std::io::Result<Pool> {
        let (tx, rx) = unbounded::<Job>();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("gears-worker-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || {
                    on_start();
                    for job in rx.iter() {
                        // A job must not kill the worker: a panic is caught and logged.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                            eprintln!("gears: a job panicked on a worker thread");
                        }
                    }
                })?;
        }
        Ok(Pool { jobs: tx })
    }

    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        // The receivers live as long as the process, so sending cannot fail.
        let _ = self.jobs.send(Box::new(job));
    }
}
