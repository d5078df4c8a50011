//! Running a guest's plans natively, with the runtime the guest runs inside Redis
//! (fused.rs) and the module's native steps, as one shard would.

use rmpv::Value;

use super::host::{current, TestHost};
use super::native::{engine, NativeOp};
use super::plan::{compile, description, Description, Operator, PlanInfo};
use crate::__rt::DescribeFn;
use crate::builder::{encode, Guest};
use crate::callbacks::Callback;
use crate::fused::{FusedRun, Out};
use crate::{Error, Result};

/// What a run gives: its results and one error text per record that failed.
pub type Outcome = (Vec<Value>, Vec<String>);

/// Calls the describe function, commands failing meanwhile as on the host.
fn build(f: DescribeFn) -> Result<Guest> {
    let host = current();
    if let Some(h) = &host {
        h.describing(true);
    }
    let g = crate::__rt::build(f);
    if let Some(h) = &host {
        h.describing(false);
    }
    g.map_err(Error::msg)
}

/// Runs a guest's describe function as the module does at upload and returns its jobs
/// and registrations, or the builder's errors (an unknown reader, an option the reader
/// does not take, two jobs of one name...) as one error.
///
/// ```
/// use gears::{testing, GearsBuilder, Guest, Run};
///
/// fn describe(g: &mut Guest) {
///     g.job("keys", GearsBuilder::new("KeysOnlyReader").run(Run::new().pattern("a:*")));
/// }
/// let d = testing::describe(describe).unwrap();
/// assert_eq!((d.jobs[0].name.as_str(), d.jobs[0].reader.as_str()), ("keys", "KeysOnlyReader"));
///
/// fn bad(g: &mut Guest) {
///     g.job("x", GearsBuilder::new("NoSuchReader").run(Run::new()));
/// }
/// assert!(testing::describe(bad).unwrap_err().to_string().contains("unknown reader"));
/// ```
pub fn describe(f: DescribeFn) -> Result<Description> {
    description(&build(f)?).map_err(Error::msg)
}

/// A registration, by its position (from 0, in the order `describe` added them) or by
/// its name or description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// The n-th registration.
    Index(usize),
    /// The registration with this name or description.
    Named(&'a str),
}

impl From<usize> for Which<'_> {
    fn from(i: usize) -> Self {
        Which::Index(i)
    }
}

impl<'a> From<&'a str> for Which<'a> {
    fn from(s: &'a str) -> Self {
        Which::Named(s)
    }
}

/// Runs the job `job` over `records` (the records its reader would give) as the module
/// runs it on one shard: the steps expanded as the module expands them, the guest's
/// steps through the guest's own runtime, the module's steps (count, countby, distinct,
/// avg, sort, limit) as the module computes them. Returns the results and one error per
/// record that failed (the record is dropped, the others go on).
///
/// `args` are RG.WASMRUN's arguments after the job's name: a GeneratorReader job gets
/// them, and its generator makes the records (`records` must then be empty).
///
/// Commands go to the TestHost installed on the thread ([`with_host`](super::with_host)).
///
/// ```
/// use gears::{testing, GearsBuilder, Guest, Run, Value};
///
/// fn describe(g: &mut Guest) {
///     g.job("lengths", GearsBuilder::new("KeysOnlyReader")
///         .map(|k: String| if k.is_empty() { Err(gears::Error::msg("empty")) } else { Ok(k.len()) })
///         .sort(true)
///         .run(Run::new()));
/// }
/// let records = vec![Value::from("ab"), Value::from(""), Value::from("abc")];
/// let (results, errors) = testing::run_job(describe, "lengths", records, &[]).unwrap();
/// assert_eq!(results, vec![Value::from(3), Value::from(2)]);
/// assert_eq!(errors, ["empty"]);
/// ```
pub fn run_job(f: DescribeFn, job: &str, records: Vec<Value>, args: &[&str]) -> Result<Outcome> {
    let g = build(f)?;
    let plan = g
        .jobs
        .iter()
        .find(|j| j.name == job)
        .ok_or_else(|| {
            let names: Vec<&str> = g.jobs.iter().map(|j| j.name.as_str()).collect();
            Error::msg(format!(
                "the guest has no job '{job}' (it has: {})",
                names.join(", ")
            ))
        })
        .and_then(|p| super::plan::info(p).map_err(Error::msg))?;
    let records = if plan.reader == "GeneratorReader" {
        if !records.is_empty() {
            return Err(Error::msg(
                "a GeneratorReader job makes its own records: pass none (and its arguments as args)",
            ));
        }
        generate(&g, &plan, args)?
    } else {
        records
    };
    run_plan(&g, &plan, records)
}

/// Runs one of the guest's registrations over one event's records (e.g. a KeysReader
/// event's `{key, value, type, event}`, which [`Keyspace::key_record`] makes), as
/// [`run_job`] runs a job.
///
/// ```
/// use gears::{execute, testing::{self, with_host, TestHost}, GearsBuilder, Guest, KeyRecord, Register};
///
/// fn describe(g: &mut Guest) {
///     g.registration(GearsBuilder::new("KeysReader")
///         .foreach(|r: KeyRecord| { execute(["sadd", "all_keys", r.key.as_str()])?; Ok(()) })
///         .register(Register::new()));
/// }
/// let host = TestHost::new();
/// host.keyspace().set("k1", "v");
/// let event = host.keyspace().key_record("k1", Some("set")).unwrap();
/// let (results, errors) =
///     with_host(&host, || testing::run_registration(describe, 0, vec![event])).unwrap();
/// assert!(errors.is_empty());
/// assert_eq!(host.keyspace().members("all_keys"), vec![b"k1".to_vec()]);
/// ```
///
/// [`Keyspace::key_record`]: super::Keyspace::key_record
pub fn run_registration<'a>(
    f: DescribeFn,
    which: impl Into<Which<'a>>,
    records: Vec<Value>,
) -> Result<Outcome> {
    let g = build(f)?;
    let which = which.into();
    let plan = match which {
        Which::Index(i) => g.registrations.get(i),
        Which::Named(n) => g
            .registrations
            .iter()
            .find(|r| r.name == n || r.desc.as_deref() == Some(n)),
    }
    .ok_or_else(|| {
        let which = match which {
            Which::Index(i) => format!("{i}"),
            Which::Named(n) => format!("'{n}'"),
        };
        Error::msg(format!(
            "the guest has no registration {which} (it has {})",
            g.registrations.len()
        ))
    })?;
    let plan = super::plan::info(plan).map_err(Error::msg)?;
    run_plan(&g, &plan, records)
}

/// [`run_job`] of a KeysReader, KeysOnlyReader or ShardsIDReader job over the records
/// its reader would read from the installed TestHost: the names of the keys matching
/// the pattern (RG.WASMRUN's first argument in `args`, else the job's), or their
/// `{key, value, type, event}` records, or the shard's id.
///
/// ```
/// use gears::{testing::{self, with_host, TestHost}, GearsBuilder, Guest, Run, Value};
///
/// fn describe(g: &mut Guest) {
///     g.job("n", GearsBuilder::new("KeysOnlyReader").count().run(Run::new().pattern("a:*")));
/// }
/// let host = TestHost::new();
/// host.keyspace().set("a:1", "").set("a:2", "").set("b:1", "");
/// let (n, _) = with_host(&host, || testing::run_job_over_keyspace(describe, "n", &[])).unwrap();
/// assert_eq!(n, vec![Value::from(2)]);
/// let (n, _) = with_host(&host, || testing::run_job_over_keyspace(describe, "n", &["*"])).unwrap();
/// assert_eq!(n, vec![Value::from(3)]);
/// ```
pub fn run_job_over_keyspace(f: DescribeFn, job: &str, args: &[&str]) -> Result<Outcome> {
    let host = current().ok_or_else(|| {
        Error::msg("run_job_over_keyspace() reads the TestHost's keyspace: install one (with_host)")
    })?;
    let d = describe(f)?;
    let plan = d
        .jobs
        .iter()
        .find(|j| j.name == job)
        .ok_or_else(|| Error::msg(format!("the guest has no job '{job}'")))?;
    let records = reader_records(&host, plan, args)?;
    run_job(f, job, records, args)
}

fn key_name(k: &[u8]) -> Value {
    Value::from(String::from_utf8_lossy(k).into_owned())
}

/// What the reader of `plan` reads from the host (module/src/readers/keys.rs).
fn reader_records(host: &TestHost, plan: &PlanInfo, args: &[&str]) -> Result<Vec<Value>> {
    let flag = |name: &str, default: bool| {
        plan.reader_arg(name)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    };
    let pattern = args
        .first()
        .map(|p| p.to_string())
        .or_else(|| {
            plan.reader_arg("pattern")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| "*".into());
    let ks = host.keyspace();
    let (no_scan, read_value) = (flag("noScan", false), flag("readValue", true));
    let keys: Vec<Vec<u8>> = if no_scan {
        vec![pattern.as_bytes().to_vec()]
    } else {
        ks.keys_matching(&pattern)
    };
    let event_only = |k: &[u8]| {
        Value::Map(vec![
            (Value::from("key"), key_name(k)),
            (Value::from("event"), Value::Nil),
        ])
    };
    Ok(match plan.reader.as_str() {
        "KeysOnlyReader" => keys
            .iter()
            .filter(|k| ks.contains(k))
            .map(|k| key_name(k))
            .collect(),
        "KeysReader" if read_value => keys
            .iter()
            .filter_map(|k| match ks.key_record(k, None) {
                Some(r) => Some(r),
                // As RedisGears 1.2: the one key asked for, missing, is a record of type
                // 'empty' with no value.
                None if no_scan => Some(Value::Map(vec![
                    (Value::from("key"), key_name(k)),
                    (Value::from("value"), Value::Nil),
                    (Value::from("type"), Value::from("empty")),
                    (Value::from("event"), Value::Nil),
                ])),
                None => None,
            })
            .collect(),
        "KeysReader" => keys
            .iter()
            .filter(|k| ks.contains(k))
            .map(|k| event_only(k))
            .collect(),
        "ShardsIDReader" => vec![Value::from(host.shard())],
        other => {
            return Err(Error::msg(format!(
                "run_job_over_keyspace() reads for KeysReader, KeysOnlyReader and \
                 ShardsIDReader jobs, not {other}: give run_job the records"
            )))
        }
    })
}

/// A GeneratorReader's records: its generator called with the run's arguments.
fn generate(g: &Guest, plan: &PlanInfo, args: &[&str]) -> Result<Vec<Value>> {
    let index = plan
        .reader_arg("generator")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::msg("GeneratorReader needs a generator callback"))?;
    let Some(Callback::Generator(gen)) =
        usize::try_from(index).ok().and_then(|i| g.callbacks.get(i))
    else {
        return Err(Error::msg(format!("callback {index} is not a generator")));
    };
    gen(args.iter().map(|a| a.to_string()).collect())?.collect()
}

/// One operator with its state.
enum Running {
    Fused(Box<FusedRun>),
    Native(NativeOp),
}

impl Running {
    fn push(&mut self, records: Vec<Value>, errors: &mut Vec<String>) -> Result<Vec<Value>> {
        let out = match self {
            Running::Native(op) => return Ok(op.push(records, errors)),
            // Its first step reads the records in place, from the batch as the host
            // sends it: the same path as in Redis.
            Running::Fused(run) if run.views_first() => run
                .push_encoded(&encode(&Value::Array(records)))
                .map_err(|e| Error::msg(format!("push: {e}")))?,
            Running::Fused(run) => run.push(records),
        };
        decoded(out, errors)
    }

    fn finish(&mut self, errors: &mut Vec<String>) -> Result<Vec<Value>> {
        match self {
            Running::Native(op) => Ok(op.finish()),
            Running::Fused(run) => decoded(run.finish(), errors),
        }
    }
}

/// A guest's output as the host decodes it before anything else sees it; a value the
/// host's codec refuses fails the run, as it fails the execution.
fn decoded(out: Out, errors: &mut Vec<String>) -> Result<Vec<Value>> {
    errors.extend(out.errors);
    out.records
        .into_iter()
        .map(|r| match refused(&r, 0) {
            Some(e) => Err(Error::msg(format!("the guest returned a bad batch: {e}"))),
            None => Ok(engine(r)),
        })
        .collect()
}

/// Why the host's codec (module/src/engine/codec.rs) would refuse `v`, if it would.
fn refused(v: &Value, depth: usize) -> Option<String> {
    const MAX_DEPTH: usize = 128;
    if depth > MAX_DEPTH {
        return Some(format!("value nested deeper than {MAX_DEPTH} levels"));
    }
    match v {
        // 1: an error element; 2 and 3: a tuple or set between shards.
        Value::Ext(1..=3, _) => None,
        Value::Ext(ty, _) => Some(format!("unknown MessagePack ext type {ty}")),
        Value::Array(items) => items.iter().find_map(|i| refused(i, depth + 1)),
        Value::Map(pairs) => pairs
            .iter()
            .find_map(|(k, v)| refused(k, depth + 1).or_else(|| refused(v, depth + 1))),
        _ => None,
    }
}

/// Runs `records` through the operators, then finishes each in order, what a finish
/// outputs going through the operators after it: one batch of the module's stage loop.
fn run_plan(g: &Guest, plan: &PlanInfo, records: Vec<Value>) -> Result<Outcome> {
    let mut ops = Vec::new();
    for op in compile(plan).map_err(Error::msg)? {
        ops.push(match op {
            Operator::Fused(specs) => Running::Fused(Box::new(
                FusedRun::new(specs, &g.callbacks).map_err(Error::msg)?,
            )),
            Operator::Native(step) => Running::Native(NativeOp::new(step)),
        });
    }
    let mut errors = Vec::new();
    let records = records.into_iter().map(engine).collect();
    let mut results = through(&mut ops, 0, records, &mut errors)?;
    for i in 0..ops.len() {
        let flushed = ops[i].finish(&mut errors)?;
        results.extend(through(&mut ops, i + 1, flushed, &mut errors)?);
    }
    Ok((results, errors))
}

fn through(
    ops: &mut [Running],
    from: usize,
    mut records: Vec<Value>,
    errors: &mut Vec<String>,
) -> Result<Vec<Value>> {
    for op in ops.iter_mut().skip(from) {
        if records.is_empty() {
            break;
        }
        records = op.push(records, errors)?;
    }
    Ok(records)
}
