//! The guest's side of the WIT `plans` interface, reached through [`guest!`]: the
//! callback table, the handle table of runs and generators, and the batch codec.
//! Not for direct use; public only so that the macro's expansion can name it.
//!
//! [`guest!`]: crate::guest

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rmpv::Value;

pub use wit_bindgen;

use crate::builder::{encode, Guest, PlanOut};
use crate::callbacks::{Callback, Records};
use crate::fused::{FusedRun, FusedSpec, Out};
use crate::host::unpack;

/// The bindings of `wit/gears.wit`, world `guest`. Generated code: its unsafe is
/// wit-bindgen's, exempt from the crate's unsafe lints.
#[allow(
    missing_docs,
    clippy::all,
    unsafe_code,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "guest",
        path: "wit",
        pub_export_macro: true,
        runtime_path: "gears::__rt::wit_bindgen::rt",
    });
}

pub use bindings::exports::redisgears::guest::plans::Guest as PlansGuest;
pub use bindings::redisgears::guest::types::{
    BatchOut, Description, FusedStep, Plan as WitPlan, Step as WitStep,
};

/// The user's describe function, as `guest!` passes it.
pub type DescribeFn = fn(&mut Guest);

enum Handle {
    Run(FusedRun),
    Generator(Records),
}

#[derive(Default)]
struct Runtime {
    /// The callback table of the last describe (built on first use when the host
    /// opens a run in a fresh instance without describing first).
    callbacks: Option<Rc<Vec<Callback>>>,
    handles: HashMap<u32, Handle>,
    next: u32,
}

thread_local! {
    static RT: RefCell<Runtime> = RefCell::new(Runtime::default());
}

/// Rust's default panic hook writes the message over several lines and ends with a
/// note about RUST_BACKTRACE; the host reports the guest's stderr with the trap, so
/// write one line instead: `panicked at <file:line:col>: <message>`.
fn panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info.payload_as_str().unwrap_or("Box<dyn Any>");
            let msg = msg.replace('\n', " ");
            match info.location() {
                Some(at) => eprintln!("panicked at {at}: {msg}"),
                None => eprintln!("panicked: {msg}"),
            }
        }));
    });
}

pub(crate) fn build(f: DescribeFn) -> Result<Guest, String> {
    let mut g = Guest::default();
    f(&mut g);
    if g.errors.is_empty() {
        Ok(g)
    } else {
        Err(format!("describe: {}", g.errors.join("; ")))
    }
}

fn table(f: DescribeFn) -> Result<Rc<Vec<Callback>>, String> {
    if let Some(t) = RT.with(|rt| rt.borrow().callbacks.clone()) {
        return Ok(t);
    }
    let g = build(f)?;
    let t = Rc::new(g.callbacks);
    RT.with(|rt| rt.borrow_mut().callbacks = Some(t.clone()));
    Ok(t)
}

fn add_handle(h: Handle) -> u32 {
    RT.with(|rt| {
        let mut rt = rt.borrow_mut();
        loop {
            rt.next = rt.next.wrapping_add(1);
            let id = rt.next;
            if id != 0 && !rt.handles.contains_key(&id) {
                rt.handles.insert(id, h);
                return id;
            }
        }
    })
}

/// Takes a handle out of the table while it works (so no borrow is held across user
/// code), then puts it back.
fn with_handle<T>(id: u32, f: impl FnOnce(&mut Handle) -> T) -> Result<T, String> {
    let mut h = RT
        .with(|rt| rt.borrow_mut().handles.remove(&id))
        .ok_or_else(|| format!("no run or generator with handle {id}"))?;
    let out = f(&mut h);
    RT.with(|rt| rt.borrow_mut().handles.insert(id, h));
    Ok(out)
}

fn wit_plan(p: PlanOut) -> WitPlan {
    WitPlan {
        name: p.name,
        reader: p.reader,
        reader_args: p.reader_args,
        steps: p
            .steps
            .into_iter()
            .map(|s| WitStep {
                op: s.op,
                callbacks: s.callbacks,
                args: s.args,
                name: s.name,
            })
            .collect(),
        mode: p.mode.to_string(),
        desc: p.desc,
    }
}

fn batch_out(out: Out) -> BatchOut {
    let mut records = Vec::with_capacity(16 + out.records.len() * 16);
    rmp::encode::write_array_len(&mut records, out.records.len() as u32)
        .expect("writing to a Vec cannot fail");
    for r in &out.records {
        rmpv::encode::write_value(&mut records, r).expect("writing to a Vec cannot fail");
    }
    BatchOut {
        records,
        errors: out.errors,
    }
}

/// `describe`: calls the user's function and (re)builds the callback table.
pub fn describe(f: DescribeFn) -> Result<Description, String> {
    panic_hook();
    let g = build(f)?;
    RT.with(|rt| rt.borrow_mut().callbacks = Some(Rc::new(g.callbacks)));
    Ok(Description {
        jobs: g.jobs.into_iter().map(wit_plan).collect(),
        registrations: g.registrations.into_iter().map(wit_plan).collect(),
    })
}

/// `open-run`.
pub fn open_run(f: DescribeFn, steps: Vec<FusedStep>) -> Result<u32, String> {
    panic_hook();
    let t = table(f)?;
    let mut specs = Vec::with_capacity(steps.len());
    for (i, s) in steps.into_iter().enumerate() {
        let zero = match s.zero {
            Some(bytes) => {
                Some(unpack(&bytes).map_err(|e| format!("fused step {i} ({}): zero: {e}", s.op))?)
            }
            None => None,
        };
        specs.push(FusedSpec {
            op: s.op,
            callbacks: s.callbacks,
            zero,
        });
    }
    let run = FusedRun::new(specs, &t)?;
    Ok(add_handle(Handle::Run(run)))
}

/// `push`: decodes the batch once, runs it, encodes the outputs once.
pub fn push(run: u32, records: Vec<u8>) -> Result<BatchOut, String> {
    panic_hook();
    with_handle(run, |h| match h {
        // Its first step reads the records where they lie (`View`).
        Handle::Run(r) if r.views_first() => r
            .push_encoded(&records)
            .map(batch_out)
            .map_err(|e| format!("push: {e}")),
        Handle::Run(r) => {
            let records = match unpack(&records).map_err(|e| format!("push: {e}"))? {
                Value::Array(items) => items,
                _ => return Err("push: the records are not a MessagePack array".into()),
            };
            Ok(batch_out(r.push(records)))
        }
        Handle::Generator(_) => Err(format!("push: handle {run} is a generator, not a run")),
    })?
}

/// `finish`.
pub fn finish(run: u32) -> Result<BatchOut, String> {
    panic_hook();
    with_handle(run, |h| match h {
        Handle::Run(r) => Ok(batch_out(r.finish())),
        Handle::Generator(_) => Err(format!("finish: handle {run} is a generator, not a run")),
    })?
}

/// `close`.
pub fn close(handle: u32) {
    RT.with(|rt| rt.borrow_mut().handles.remove(&handle));
}

/// `open-generator`.
pub fn open_generator(f: DescribeFn, callback: u32, args: Vec<String>) -> Result<u32, String> {
    panic_hook();
    let t = table(f)?;
    let g = match t.get(callback as usize) {
        Some(Callback::Generator(g)) => g.clone(),
        Some(other) => {
            return Err(format!(
                "open-generator: callback {callback} is a {}, not a generator",
                other.kind()
            ))
        }
        None => {
            return Err(format!(
                "open-generator: callback {callback} does not exist (the guest has {})",
                t.len()
            ))
        }
    };
    let it = g(args).map_err(|e| e.to_string())?;
    Ok(add_handle(Handle::Generator(it)))
}

/// `next-records`: up to `n` records; an empty array at the end.
pub fn next_records(generator: u32, n: u32) -> Result<Vec<u8>, String> {
    panic_hook();
    with_handle(generator, |h| match h {
        Handle::Generator(it) => {
            let mut items = Vec::new();
            for _ in 0..n {
                match it.next() {
                    Some(Ok(v)) => items.push(v),
                    Some(Err(e)) => return Err(e.to_string()),
                    None => break,
                }
            }
            Ok(encode(&Value::Array(items)))
        }
        Handle::Run(_) => Err(format!(
            "next-records: handle {generator} is a run, not a generator"
        )),
    })?
}
