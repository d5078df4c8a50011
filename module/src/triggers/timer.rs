//! TimeReader registrations: a record `{'time': unix ms, 'tick': n}` every interval on
//! a primary. Ticks missed while Redis was down are not replayed; an execution that
//! outlasts its interval makes the timer skip ticks, never queue them.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis_module::{Context, ContextFlags};

use crate::engine::execution::Execution;
use crate::engine::reader::VecReader;
use crate::engine::registration::{Registration, Trigger};
use crate::engine::value::Value;
use crate::globals::globals;
use crate::redis::lock;

pub struct TimeTrigger {
    pub interval_ms: u64,
    /// The execution of the last tick, to skip ticks while it runs.
    last: Mutex<Option<Arc<Execution>>>,
}

impl TimeTrigger {
    pub fn new(interval_ms: u64) -> Self {
        TimeTrigger {
            interval_ms,
            last: Mutex::new(None),
        }
    }
}

impl Trigger for TimeTrigger {
    fn reader(&self) -> &'static str {
        "TimeReader"
    }

    fn args(&self) -> Vec<(String, Value)> {
        vec![("interval".into(), Value::Int(self.interval_ms as i64))]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct Tick {
    registration: Weak<Registration>,
    n: u64,
}

fn arm(ctx: &Context, tick: Tick, interval: Duration) {
    ctx.create_timer(interval, on_tick, tick);
}

fn on_tick(ctx: &Context, tick: Tick) {
    let Some(reg) = tick.registration.upgrade() else {
        return;
    };
    // Unregistered (or replaced on load): the timer ends.
    if globals()
        .registrations
        .get(&reg.id)
        .is_none_or(|r| !Arc::ptr_eq(&r, &reg))
    {
        return;
    }
    let Some(trigger) = reg.trigger.as_any().downcast_ref::<TimeTrigger>() else {
        return;
    };
    let interval = Duration::from_millis(trigger.interval_ms.max(1));
    let flags = ctx.get_flags();
    let primary = flags.contains(ContextFlags::MASTER) && !flags.contains(ContextFlags::LOADING);
    let mut next = tick.n;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut last = trigger.last.lock().unwrap_or_else(|e| e.into_inner());
        let busy = last.as_ref().is_some_and(|e| !e.status().is_finished());
        if primary && !busy && !reg.is_paused() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let record = Value::Map(vec![
                (Value::str("time"), Value::Int(now)),
                (Value::str("tick"), Value::Int(tick.n as i64)),
            ]);
            *last = Some(super::fire(&reg, Box::new(VecReader::new(vec![record]))));
            next += 1;
        }
    }));
    if caught.is_err() {
        ctx.log_warning("gears: a timer tick panicked; the next tick is still armed");
    }
    arm(
        ctx,
        Tick {
            registration: Arc::downgrade(&reg),
            n: next,
        },
        interval,
    );
}

/// Starts the timer of a TimeReader registration (main thread).
pub fn start(reg: &Arc<Registration>) {
    let Some(trigger) = reg.trigger.as_any().downcast_ref::<TimeTrigger>() else {
        return;
    };
    let interval = Duration::from_millis(trigger.interval_ms.max(1));
    arm(
        &lock::context(),
        Tick {
            registration: Arc::downgrade(reg),
            n: 0,
        },
        interval,
    );
}
