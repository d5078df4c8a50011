//! GearsBuilder: records a plan the way Python's `GearsBuilder` does.

use std::fmt;

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::callbacks::{self, Callback};
use crate::value::to_value;
use crate::Result;

/// The readers a builder may start from (Python's names; `GeneratorReader` stands for
/// Python's PythonReader).
///
/// ```
/// assert!(gears::READERS.contains(&"KeysOnlyReader"));
/// ```
pub const READERS: &[&str] = &[
    "KeysReader",
    "KeysOnlyReader",
    "StreamReader",
    "CommandReader",
    "ShardsIDReader",
    "TimeReader",
    "GeneratorReader",
];

/// How an execution runs: `sync` (on the calling thread, holding Redis), `async` (on a
/// worker thread, across the cluster) or `async_local` (async, this shard only).
///
/// ```
/// use gears::Mode;
/// assert_eq!(Mode::default(), Mode::Async);
/// assert_eq!(Mode::AsyncLocal.as_str(), "async_local");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// `sync`
    Sync,
    /// `async` (the default)
    #[default]
    Async,
    /// `async_local`
    AsyncLocal,
}

impl Mode {
    /// The mode's name in the plan: `sync`, `async` or `async_local`.
    ///
    /// ```
    /// assert_eq!(gears::Mode::Sync.as_str(), "sync");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
            Mode::AsyncLocal => "async_local",
        }
    }
}

/// One step as the builder recorded it (its callbacks not yet numbered).
pub(crate) struct StepDef {
    pub(crate) op: &'static str,
    pub(crate) callbacks: Vec<Callback>,
    pub(crate) args: Vec<Value>,
    pub(crate) name: String,
}

/// A chain of operations over a reader's records, ended by [`run`](Self::run) (a job)
/// or [`register`](Self::register) (a registration). The step functions are closures
/// whose argument and result types are any serde types: each record is decoded into the
/// argument type (a [`Value`] takes it as is) and the result encoded back.
///
/// Every operation has the name and meaning of its Python counterpart (RedisGears 1.2's
/// GearsBuilder; docs/coming-from-redisgears-1.2.md lists them); functions return [`Result`], and an `Err` drops the record it was
/// working on and adds the error's text to the execution's errors.
///
/// ```
/// use gears::{execute_as, GearsBuilder, Run};
///
/// // recipe 2: count movies by genre
/// let plan = GearsBuilder::new("KeysOnlyReader")
///     .map(|key: String| execute_as::<Option<String>>(["hget", key.as_str(), "genres"]))
///     .filter(|g: Option<String>| Ok(g.is_some()))
///     .flatmap(|g: Option<String>| {
///         Ok(g.unwrap_or_default().split(',').map(String::from).collect::<Vec<_>>())
///     })
///     .countby_record()
///     .run(Run::new().pattern("movie:*"));
/// ```
pub struct GearsBuilder {
    reader: String,
    steps: Vec<StepDef>,
    generator: Option<Callback>,
    desc: Option<String>,
    errors: Vec<String>,
}

impl fmt::Debug for GearsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GearsBuilder")
            .field("reader", &self.reader)
            .field(
                "steps",
                &self.steps.iter().map(|s| s.op).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn fn_name<F>() -> String {
    std::any::type_name::<F>().to_string()
}

impl GearsBuilder {
    /// A builder reading from `reader`, one of [`READERS`] (a `GeneratorReader` builder
    /// comes from [`generator`](Self::generator) instead). An unknown reader makes
    /// `describe` fail with a clear error.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysReader");
    /// ```
    pub fn new(reader: &str) -> Self {
        let mut errors = Vec::new();
        if reader == "GeneratorReader" || reader == "PythonReader" {
            errors.push(format!(
                "{reader} needs a generator function: build it with GearsBuilder::generator(f)"
            ));
        } else if !READERS.contains(&reader) {
            errors.push(format!(
                "unknown reader '{reader}' (expected one of {})",
                READERS.join(", ")
            ));
        }
        GearsBuilder {
            reader: reader.to_string(),
            steps: Vec::new(),
            generator: None,
            desc: None,
            errors,
        }
    }

    /// A `GeneratorReader` builder (Python's PythonReader): `f` gets the arguments of
    /// `RG.WASMRUN guest job arg...` and returns the records, as a `Vec` or any other
    /// iterable. It runs on the shard that runs the job. An `Err` fails the execution.
    ///
    /// ```
    /// use gears::{GearsBuilder, Run};
    ///
    /// // RG.WASMRUN guest echo a b c -> a, b, c
    /// let plan = GearsBuilder::generator(|args: Vec<String>| Ok(args)).run(Run::new());
    /// // an iterator works too (it is pulled in batches as the host asks)
    /// let plan = GearsBuilder::generator(|args: Vec<String>| {
    ///     let n: u64 = args.first().map(|a| a.parse()).transpose()?.unwrap_or(10);
    ///     Ok(0..n)
    /// })
    /// .run(Run::new());
    /// ```
    pub fn generator<T, It, F>(f: F) -> Self
    where
        T: Serialize + 'static,
        It: IntoIterator<Item = T>,
        It::IntoIter: 'static,
        F: Fn(Vec<String>) -> Result<It> + 'static,
    {
        GearsBuilder {
            reader: "GeneratorReader".to_string(),
            steps: Vec::new(),
            generator: Some(callbacks::generator(f)),
            desc: None,
            errors: Vec::new(),
        }
    }

    /// The description shown by RG.DUMPREGISTRATIONS (Python's `GB(desc=...)`);
    /// [`Run::desc`] and [`Register::desc`] override it.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysReader").desc("keeps all_keys up to date");
    /// ```
    pub fn desc(mut self, desc: impl Into<String>) -> Self {
        self.desc = Some(desc.into());
        self
    }

    fn step(
        mut self,
        op: &'static str,
        callbacks: Vec<Callback>,
        args: Vec<Value>,
        name: String,
    ) -> Self {
        self.steps.push(StepDef {
            op,
            callbacks,
            args,
            name,
        });
        self
    }

    fn zero<A: Serialize>(&mut self, op: &str, zero: &A) -> Value {
        match to_value(zero) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(format!("{op}(): zero: {e}"));
                Value::Nil
            }
        }
    }

    // -- local operations --

    /// Replaces each record by `f(record)`.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").map(|k: String| Ok(k.len()));
    /// ```
    pub fn map<I, O, F>(self, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(I) -> Result<O> + 'static,
    {
        self.step("map", vec![callbacks::map(f)], vec![], fn_name::<F>())
    }

    /// As [`map`](Self::map), with the record read in place ([`View`](crate::View)):
    /// nothing of it is decoded or copied but what `f` reads. For steps that need a
    /// field or two of a bigger record.
    ///
    /// ```
    /// use gears::{GearsBuilder, View};
    /// let b = GearsBuilder::new("KeysReader")
    ///     .map_view(|r: View<'_>| Ok(r.get("key").and_then(|k| k.as_str()).map(str::len)));
    /// ```
    pub fn map_view<O, F>(self, f: F) -> Self
    where
        O: Serialize + 'static,
        F: for<'a> Fn(crate::View<'a>) -> Result<O> + 'static,
    {
        self.step("map", vec![callbacks::map_view(f)], vec![], fn_name::<F>())
    }

    /// As [`filter`](Self::filter), with the record read in place
    /// ([`View`](crate::View)); a record that passes goes on whole.
    ///
    /// ```
    /// use gears::{GearsBuilder, View};
    /// let b = GearsBuilder::new("KeysOnlyReader")
    ///     .filter_view(|k: View<'_>| Ok(k.as_str().is_some_and(|k| k.starts_with("user:"))));
    /// ```
    pub fn filter_view<F>(self, f: F) -> Self
    where
        F: for<'a> Fn(crate::View<'a>) -> Result<bool> + 'static,
    {
        self.step(
            "filter",
            vec![callbacks::filter_view(f)],
            vec![],
            fn_name::<F>(),
        )
    }

    /// As [`foreach`](Self::foreach), with the record read in place
    /// ([`View`](crate::View)); the record passes on unchanged.
    ///
    /// ```
    /// use gears::{execute, GearsBuilder, View};
    /// let b = GearsBuilder::new("KeysOnlyReader").foreach_view(|k: View<'_>| {
    ///     if let Some(k) = k.as_str() {
    ///         execute(["sadd", "seen", k])?;
    ///     }
    ///     Ok(())
    /// });
    /// ```
    pub fn foreach_view<F>(self, f: F) -> Self
    where
        F: for<'a> Fn(crate::View<'a>) -> Result<()> + 'static,
    {
        self.step(
            "foreach",
            vec![callbacks::foreach_view(f)],
            vec![],
            fn_name::<F>(),
        )
    }

    /// Replaces each record by the records of `f(record)`, in order.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader")
    ///     .flatmap(|k: String| Ok(k.split(':').map(String::from).collect::<Vec<_>>()));
    /// ```
    pub fn flatmap<I, O, F>(self, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(I) -> Result<Vec<O>> + 'static,
    {
        self.step(
            "flatmap",
            vec![callbacks::flatmap(f)],
            vec![],
            fn_name::<F>(),
        )
    }

    /// Keeps the records for which `f` is true; a kept record passes on as it was (not
    /// as `f`'s argument type read it).
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").filter(|k: String| Ok(k.starts_with("a")));
    /// ```
    pub fn filter<I, F>(self, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        F: Fn(I) -> Result<bool> + 'static,
    {
        self.step("filter", vec![callbacks::filter(f)], vec![], fn_name::<F>())
    }

    /// Calls `f` on each record for its side effects; the record passes on unchanged.
    ///
    /// ```
    /// use gears::{execute, GearsBuilder};
    /// let b = GearsBuilder::new("KeysOnlyReader").foreach(|k: String| {
    ///     execute(["sadd", "seen", k.as_str()])?;
    ///     Ok(())
    /// });
    /// ```
    pub fn foreach<I, F>(self, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        F: Fn(I) -> Result<()> + 'static,
    {
        self.step(
            "foreach",
            vec![callbacks::foreach(f)],
            vec![],
            fn_name::<F>(),
        )
    }

    /// Folds the records of each shard into one: `a = f(a, record)`, `a` starting as
    /// `None`; no record, no output.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader")
    ///     .accumulate(|a: Option<i64>, k: String| Ok(a.unwrap_or(0) + k.len() as i64));
    /// ```
    pub fn accumulate<A, I, F>(self, f: F) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
        I: DeserializeOwned + 'static,
        F: Fn(Option<A>, I) -> Result<A> + 'static,
    {
        self.step(
            "accumulate",
            vec![callbacks::accumulate(f)],
            vec![],
            fn_name::<F>(),
        )
    }

    /// Groups each shard's records by `extract(record)` and folds each group with
    /// `a = reduce(key, a, record)` (`a` starts as `None`); emits `{key, value}` per group.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").localgroupby(
    ///     |k: String| Ok(k.split(':').next().unwrap_or("").to_string()),
    ///     |_prefix: String, a: Option<i64>, _k: String| Ok(a.unwrap_or(0) + 1),
    /// );
    /// ```
    pub fn localgroupby<I, K, A, E, R>(self, extract: E, reduce: R) -> Self
    where
        I: DeserializeOwned + 'static,
        K: Serialize + DeserializeOwned + 'static,
        A: Serialize + DeserializeOwned + 'static,
        E: Fn(I) -> Result<K> + 'static,
        R: Fn(K, Option<A>, I) -> Result<A> + 'static,
    {
        let cbs = vec![callbacks::map(extract), callbacks::reduce(reduce)];
        self.step("localgroupby", cbs, vec![], fn_name::<E>())
    }

    /// Keeps the first `length` records after skipping `offset` (Python's
    /// `limit(length, offset=0)`).
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").sort(false).limit(10, 0);
    /// ```
    pub fn limit(self, length: u64, offset: u64) -> Self {
        self.step(
            "limit",
            vec![],
            vec![Value::from(length), Value::from(offset)],
            String::new(),
        )
    }

    // -- operations that move records between shards --

    /// Sends every record to the shard that started the execution.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").collect();
    /// ```
    pub fn collect(self) -> Self {
        self.step("collect", vec![], vec![], String::new())
    }

    /// Sends each record to the shard that owns the slot of `extract(record)` (a key
    /// name); the record itself passes on unchanged.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").repartition(|k: String| Ok(k));
    /// ```
    pub fn repartition<I, K, F>(self, extract: F) -> Self
    where
        I: DeserializeOwned + 'static,
        K: Serialize + 'static,
        F: Fn(I) -> Result<K> + 'static,
    {
        self.step(
            "repartition",
            vec![callbacks::map(extract)],
            vec![],
            fn_name::<F>(),
        )
    }

    /// Groups all records by `extract(record)` across the cluster and folds each group
    /// with `a = reduce(key, a, record)` (`a` starts as `None`); emits `{key, value}`.
    ///
    /// ```
    /// use gears::KeyRecord;
    /// let b = gears::GearsBuilder::new("KeysReader").groupby(
    ///     |r: KeyRecord| Ok(r.kind.unwrap_or_default()),
    ///     |_t: String, a: Option<i64>, _r: KeyRecord| Ok(a.unwrap_or(0) + 1),
    /// );
    /// ```
    pub fn groupby<I, K, A, E, R>(self, extract: E, reduce: R) -> Self
    where
        I: DeserializeOwned + 'static,
        K: Serialize + DeserializeOwned + 'static,
        A: Serialize + DeserializeOwned + 'static,
        E: Fn(I) -> Result<K> + 'static,
        R: Fn(K, Option<A>, I) -> Result<A> + 'static,
    {
        let cbs = vec![callbacks::map(extract), callbacks::reduce(reduce)];
        self.step("groupby", cbs, vec![], fn_name::<E>())
    }

    /// Groups all records by `extract(record)` across the cluster and calls
    /// `reduce(key, records)` once per group; emits `{key, value}`.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").batchgroupby(
    ///     |k: String| Ok(k.len()),
    ///     |_len: usize, keys: Vec<String>| Ok(keys.len()),
    /// );
    /// ```
    pub fn batchgroupby<I, K, A, E, R>(self, extract: E, reduce: R) -> Self
    where
        I: DeserializeOwned + 'static,
        K: Serialize + DeserializeOwned + 'static,
        A: Serialize + 'static,
        E: Fn(I) -> Result<K> + 'static,
        R: Fn(K, Vec<I>) -> Result<A> + 'static,
    {
        let cbs = vec![callbacks::map(extract), callbacks::batch_reduce(reduce)];
        self.step("batchgroupby", cbs, vec![], fn_name::<E>())
    }

    /// Folds all records into one value: each shard folds its records with
    /// `a = seq(a, record)` from a copy of `zero`, then the shards' results are folded
    /// with `a = comb(a, b)`, again from a copy of `zero`.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").aggregate(
    ///     0i64,
    ///     |a: i64, k: String| Ok(a + k.len() as i64),
    ///     |a: i64, b: i64| Ok(a + b),
    /// );
    /// ```
    pub fn aggregate<A, I, S, C>(mut self, zero: A, seq: S, comb: C) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
        I: DeserializeOwned + 'static,
        S: Fn(A, I) -> Result<A> + 'static,
        C: Fn(A, A) -> Result<A> + 'static,
    {
        let zero = self.zero("aggregate", &zero);
        let cbs = vec![callbacks::fold(seq), callbacks::fold(comb)];
        self.step("aggregate", cbs, vec![zero], fn_name::<S>())
    }

    /// [`aggregate`](Self::aggregate) per key: records are grouped by
    /// `extract(record)`, each group folded with `seq(key, a, record)` on its shard and
    /// the shards' results with `comb(key, a, b)`, both from a copy of `zero`; emits
    /// `{key, value}`.
    ///
    /// ```
    /// use gears::KeyRecord;
    /// let b = gears::GearsBuilder::new("KeysReader").aggregateby(
    ///     |r: KeyRecord| Ok(r.kind.unwrap_or_default()),
    ///     0i64,
    ///     |_t: String, a: i64, _r: KeyRecord| Ok(a + 1),
    ///     |_t: String, a: i64, b: i64| Ok(a + b),
    /// );
    /// ```
    pub fn aggregateby<I, K, A, E, S, C>(mut self, extract: E, zero: A, seq: S, comb: C) -> Self
    where
        I: DeserializeOwned + 'static,
        K: Serialize + DeserializeOwned + 'static,
        A: Serialize + DeserializeOwned + 'static,
        E: Fn(I) -> Result<K> + 'static,
        S: Fn(K, A, I) -> Result<A> + 'static,
        C: Fn(K, A, A) -> Result<A> + 'static,
    {
        let zero = self.zero("aggregateby", &zero);
        let cbs = vec![
            callbacks::map(extract),
            callbacks::key_fold(seq),
            callbacks::key_fold(comb),
        ];
        self.step("aggregateby", cbs, vec![zero], fn_name::<E>())
    }

    /// The number of records (0 when there are none).
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").count();
    /// ```
    pub fn count(self) -> Self {
        self.step("count", vec![], vec![], String::new())
    }

    /// Counts the records per `extract(record)`; emits `{key, value: count}`.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader")
    ///     .countby(|k: String| Ok(k.split(':').next().unwrap_or("").to_string()));
    /// ```
    pub fn countby<I, K, F>(self, extract: F) -> Self
    where
        I: DeserializeOwned + 'static,
        K: Serialize + 'static,
        F: Fn(I) -> Result<K> + 'static,
    {
        self.step(
            "countby",
            vec![callbacks::map(extract)],
            vec![],
            fn_name::<F>(),
        )
    }

    /// Counts equal records (Python's `countby()` without an extractor); emits
    /// `{key: record, value: count}`.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").countby_record();
    /// ```
    pub fn countby_record(self) -> Self {
        self.step("countby", vec![], vec![], String::new())
    }

    /// Drops repeated records.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").distinct();
    /// ```
    pub fn distinct(self) -> Self {
        self.step("distinct", vec![], vec![], String::new())
    }

    /// The average of `extract(record)` over all records.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").avg(|k: String| Ok(k.len() as f64));
    /// ```
    pub fn avg<I, F>(self, extract: F) -> Self
    where
        I: DeserializeOwned + 'static,
        F: Fn(I) -> Result<f64> + 'static,
    {
        self.step("avg", vec![callbacks::map(extract)], vec![], fn_name::<F>())
    }

    /// The average of the records themselves, read as numbers (Python's `avg()`).
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").map(|k: String| Ok(k.len())).avg_record();
    /// ```
    pub fn avg_record(self) -> Self {
        self.step("avg", vec![], vec![], String::new())
    }

    /// Sorts all records, ascending, or descending with `reverse`.
    ///
    /// ```
    /// let b = gears::GearsBuilder::new("KeysOnlyReader").sort(true);
    /// ```
    pub fn sort(self, reverse: bool) -> Self {
        self.step("sort", vec![], vec![Value::from(reverse)], String::new())
    }

    // -- ending the chain --

    /// Ends the chain as a job, run on demand by `RG.WASMRUN guest job [arg...]`.
    /// `RG.WASMRUN`'s first argument replaces the pattern (KeysReader, KeysOnlyReader)
    /// or the stream key (StreamReader); a GeneratorReader gets all the arguments.
    /// Mistakes (an option the reader does not take, `run` of a CommandReader...) make
    /// `describe` fail with a clear error.
    ///
    /// ```
    /// use gears::{GearsBuilder, Mode, Run};
    /// let plan = GearsBuilder::new("KeysReader")
    ///     .run(Run::new().pattern("user:*").read_value(false).mode(Mode::AsyncLocal));
    /// ```
    pub fn run(self, opts: Run) -> Plan {
        let GearsBuilder {
            reader,
            mut steps,
            generator,
            desc,
            mut errors,
        } = self;
        let mut args: Vec<(&'static str, Value)> = Vec::new();
        let given = opts.given();
        let allowed: &[&str] = match reader.as_str() {
            "KeysReader" => &["pattern", "no_scan", "read_value"],
            "KeysOnlyReader" => &["pattern", "count", "no_scan"],
            "StreamReader" => &["key", "from_id"],
            _ => &[],
        };
        let unknown: Vec<&str> = given
            .iter()
            .copied()
            .filter(|g| !allowed.contains(g))
            .collect();
        if !unknown.is_empty() && !matches!(reader.as_str(), "CommandReader" | "TimeReader") {
            errors.push(format!(
                "run() of {reader} does not take {}",
                unknown.join(", ")
            ));
        }
        let pattern = || {
            Value::from(
                opts.pattern
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "*".into()),
            )
        };
        match reader.as_str() {
            "KeysReader" => {
                args.push(("pattern", pattern()));
                args.push(("noScan", Value::from(opts.no_scan.unwrap_or(false))));
                args.push(("readValue", Value::from(opts.read_value.unwrap_or(true))));
            }
            "KeysOnlyReader" => {
                let count = opts.count.unwrap_or(1000);
                if count < 1 {
                    errors.push("run(): count must be at least 1".into());
                }
                args.push(("pattern", pattern()));
                args.push(("count", Value::from(count)));
                args.push(("noScan", Value::from(opts.no_scan.unwrap_or(false))));
            }
            "StreamReader" => {
                let key = opts.key.clone().filter(|k| !k.is_empty());
                args.push(("key", Value::from(key.unwrap_or_else(|| "*".into()))));
                let from = opts.from_id.clone().unwrap_or_else(|| "0-0".into());
                args.push(("fromId", Value::from(from)));
            }
            "CommandReader" | "TimeReader" => {
                errors.push(format!("{reader} does not support run(): use register()"));
            }
            _ => {}
        }
        if opts.collect != Some(false) {
            steps.push(StepDef {
                op: "collect",
                callbacks: vec![],
                args: vec![],
                name: String::new(),
            });
        }
        Plan {
            reader,
            reader_args: args,
            steps,
            mode: opts.mode.unwrap_or_default(),
            desc: opts.desc.or(desc),
            generator,
            errors,
        }
    }

    /// Ends the chain as a registration: the plan runs on the reader's events
    /// (KeysReader, StreamReader, CommandReader, TimeReader).
    ///
    /// ```
    /// use gears::{GearsBuilder, Mode, Register};
    /// let plan = GearsBuilder::new("StreamReader")
    ///     .register(Register::new().prefix("inputStream").batch(10).duration(500).mode(Mode::Sync));
    /// ```
    pub fn register(self, opts: Register) -> Plan {
        let GearsBuilder {
            reader,
            mut steps,
            generator,
            desc,
            mut errors,
        } = self;
        let mut args: Vec<(&'static str, Value)> = Vec::new();
        let given = opts.given();
        let allowed: &[&str] = match reader.as_str() {
            "KeysReader" => &[
                "prefix",
                "event_types",
                "key_types",
                "commands",
                "read_value",
            ],
            "StreamReader" => &[
                "prefix",
                "batch",
                "duration",
                "on_failed_policy",
                "on_failed_retry_interval",
                "trim_stream",
            ],
            "TimeReader" => &["interval"],
            "CommandReader" => &["trigger", "hook", "keyprefix"],
            _ => {
                errors.push(format!("register() of {reader} is not available"));
                &[]
            }
        };
        let unknown: Vec<&str> = given
            .iter()
            .copied()
            .filter(|g| !allowed.contains(g))
            .collect();
        if !unknown.is_empty() && !allowed.is_empty() {
            errors.push(format!(
                "register() of {reader} does not take {}",
                unknown.join(", ")
            ));
        }
        let mut mode = opts.mode.unwrap_or_default();
        let prefix = || {
            Value::from(
                opts.prefix
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "*".into()),
            )
        };
        let texts =
            |v: &Vec<String>| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        match reader.as_str() {
            "KeysReader" => {
                args.push(("prefix", prefix()));
                args.push(("readValue", Value::from(opts.read_value.unwrap_or(true))));
                if let Some(v) = &opts.event_types {
                    args.push(("eventTypes", texts(v)));
                }
                if let Some(v) = &opts.key_types {
                    args.push(("keyTypes", texts(v)));
                }
                if let Some(v) = &opts.commands {
                    args.push(("commands", texts(v)));
                }
            }
            "StreamReader" => {
                let policy = opts
                    .on_failed_policy
                    .clone()
                    .unwrap_or_else(|| "continue".into());
                if !matches!(policy.as_str(), "continue" | "abort" | "retry") {
                    errors.push(format!(
                        "register(): on_failed_policy must be continue, abort or retry, got '{policy}'"
                    ));
                } else if mode == Mode::Sync && policy != "continue" {
                    errors.push(
                        "register(): sync mode allows only on_failed_policy 'continue'".into(),
                    );
                }
                let batch = opts.batch.unwrap_or(1);
                if batch < 1 {
                    errors.push("register(): batch must be at least 1".into());
                }
                args.push(("prefix", prefix()));
                args.push(("batch", Value::from(batch)));
                args.push(("duration", Value::from(opts.duration.unwrap_or(0))));
                args.push(("onFailedPolicy", Value::from(policy)));
                args.push((
                    "onFailedRetryInterval",
                    Value::from(opts.on_failed_retry_interval.unwrap_or(1)),
                ));
                args.push(("trimStream", Value::from(opts.trim_stream.unwrap_or(true))));
            }
            "TimeReader" => match opts.interval {
                Some(ms) if ms >= 1 => args.push(("interval", Value::from(ms))),
                _ => errors.push(
                    "register(): TimeReader needs interval (milliseconds, at least 1)".into(),
                ),
            },
            "CommandReader" => match (&opts.trigger, &opts.hook) {
                (Some(trigger), None) => {
                    if opts.keyprefix.is_some() {
                        errors.push("register(): keyprefix goes with hook, not trigger".into());
                    }
                    args.push(("trigger", Value::from(trigger.as_str())));
                }
                (None, Some(hook)) => {
                    if opts.mode.is_none() {
                        mode = Mode::Sync; // hooks run sync unless told otherwise
                    }
                    args.push(("hook", Value::from(hook.as_str())));
                    if let Some(p) = &opts.keyprefix {
                        args.push(("keyprefix", Value::from(p.as_str())));
                    }
                }
                _ => errors.push("register(): CommandReader needs either trigger or hook".into()),
            },
            _ => {}
        }
        if opts.collect != Some(false) {
            steps.push(StepDef {
                op: "collect",
                callbacks: vec![],
                args: vec![],
                name: String::new(),
            });
        }
        Plan {
            reader,
            reader_args: args,
            steps,
            mode,
            desc: opts.desc.or(desc),
            generator,
            errors,
        }
    }
}

/// The options of [`GearsBuilder::run`] (Python's `run()` keyword arguments); unset
/// options take Python's defaults.
///
/// ```
/// use gears::{Mode, Run};
/// let opts = Run::new().pattern("movie:*").mode(Mode::AsyncLocal).desc("genres");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Run {
    pattern: Option<String>,
    no_scan: Option<bool>,
    read_value: Option<bool>,
    count: Option<u64>,
    key: Option<String>,
    from_id: Option<String>,
    mode: Option<Mode>,
    collect: Option<bool>,
    desc: Option<String>,
}

impl Run {
    /// Python's defaults: pattern `*`, mode async, collect.
    ///
    /// ```
    /// let opts = gears::Run::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn given(&self) -> Vec<&'static str> {
        let mut g = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                g.push(name)
            }
        };
        add(self.pattern.is_some(), "pattern");
        add(self.no_scan.is_some(), "no_scan");
        add(self.read_value.is_some(), "read_value");
        add(self.count.is_some(), "count");
        add(self.key.is_some(), "key");
        add(self.from_id.is_some(), "from_id");
        g
    }

    /// KeysReader, KeysOnlyReader: the key pattern (`*`); RG.WASMRUN's first argument
    /// replaces it.
    ///
    /// ```
    /// let opts = gears::Run::new().pattern("movie:*");
    /// ```
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// KeysReader, KeysOnlyReader: the pattern is one key's name, no SCAN (false).
    ///
    /// ```
    /// let opts = gears::Run::new().pattern("config").no_scan(true);
    /// ```
    pub fn no_scan(mut self, no_scan: bool) -> Self {
        self.no_scan = Some(no_scan);
        self
    }

    /// KeysReader: read each key's value and type (true); false gives `{key, event}`.
    ///
    /// ```
    /// let opts = gears::Run::new().read_value(false);
    /// ```
    pub fn read_value(mut self, read_value: bool) -> Self {
        self.read_value = Some(read_value);
        self
    }

    /// KeysOnlyReader: the SCAN COUNT hint (1000).
    ///
    /// ```
    /// let opts = gears::Run::new().count(100);
    /// ```
    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// StreamReader: the stream's key; RG.WASMRUN's first argument replaces it.
    ///
    /// ```
    /// let opts = gears::Run::new().key("events");
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// StreamReader: read the messages after this id (`0-0`).
    ///
    /// ```
    /// let opts = gears::Run::new().key("events").from_id("1700000000000-0");
    /// ```
    pub fn from_id(mut self, from_id: impl Into<String>) -> Self {
        self.from_id = Some(from_id.into());
        self
    }

    /// The execution mode ([`Mode::Async`]).
    ///
    /// ```
    /// let opts = gears::Run::new().mode(gears::Mode::AsyncLocal);
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Append a `collect` step, as Python's `run(collect=True)` does (true).
    ///
    /// ```
    /// let opts = gears::Run::new().collect(false);
    /// ```
    pub fn collect(mut self, collect: bool) -> Self {
        self.collect = Some(collect);
        self
    }

    /// The plan's description.
    ///
    /// ```
    /// let opts = gears::Run::new().desc("counts genres");
    /// ```
    pub fn desc(mut self, desc: impl Into<String>) -> Self {
        self.desc = Some(desc.into());
        self
    }
}

/// The options of [`GearsBuilder::register`] (Python's `register()` keyword arguments);
/// unset options take Python's defaults.
///
/// ```
/// use gears::{Mode, Register};
/// let opts = Register::new().prefix("user:*").event_types(["hset", "del"]).mode(Mode::Sync);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Register {
    prefix: Option<String>,
    event_types: Option<Vec<String>>,
    key_types: Option<Vec<String>>,
    commands: Option<Vec<String>>,
    read_value: Option<bool>,
    mode: Option<Mode>,
    batch: Option<u64>,
    duration: Option<u64>,
    on_failed_policy: Option<String>,
    on_failed_retry_interval: Option<u64>,
    trim_stream: Option<bool>,
    interval: Option<u64>,
    trigger: Option<String>,
    hook: Option<String>,
    keyprefix: Option<String>,
    desc: Option<String>,
    collect: Option<bool>,
}

fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

impl Register {
    /// Python's defaults: prefix `*`, mode async (sync for a hook), collect.
    ///
    /// ```
    /// let opts = gears::Register::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn given(&self) -> Vec<&'static str> {
        let mut g = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                g.push(name)
            }
        };
        add(self.prefix.is_some(), "prefix");
        add(self.event_types.is_some(), "event_types");
        add(self.key_types.is_some(), "key_types");
        add(self.commands.is_some(), "commands");
        add(self.read_value.is_some(), "read_value");
        add(self.batch.is_some(), "batch");
        add(self.duration.is_some(), "duration");
        add(self.on_failed_policy.is_some(), "on_failed_policy");
        add(
            self.on_failed_retry_interval.is_some(),
            "on_failed_retry_interval",
        );
        add(self.trim_stream.is_some(), "trim_stream");
        add(self.interval.is_some(), "interval");
        add(self.trigger.is_some(), "trigger");
        add(self.hook.is_some(), "hook");
        add(self.keyprefix.is_some(), "keyprefix");
        g
    }

    /// KeysReader: the keys (a prefix ending in `*`, else one key's name); StreamReader:
    /// the streams. `*` by default.
    ///
    /// ```
    /// let opts = gears::Register::new().prefix("inputStream");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// KeysReader: only these keyspace events (`set`, `hset`, `del`, `expired`,
    /// `keymiss`...); all by default.
    ///
    /// ```
    /// let opts = gears::Register::new().event_types(["keymiss"]);
    /// ```
    pub fn event_types<I, S>(mut self, event_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(strings(event_types));
        self
    }

    /// KeysReader: only keys of these types (`string`, `hash`...); all by default.
    ///
    /// ```
    /// let opts = gears::Register::new().key_types(["hash"]);
    /// ```
    pub fn key_types<I, S>(mut self, key_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.key_types = Some(strings(key_types));
        self
    }

    /// KeysReader: only events caused by these commands, with the client held until the
    /// execution is done ([`override_reply`](crate::override_reply) may replace its reply).
    ///
    /// ```
    /// let opts = gears::Register::new().prefix("q:*").commands(["lpush"]);
    /// ```
    pub fn commands<I, S>(mut self, commands: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.commands = Some(strings(commands));
        self
    }

    /// KeysReader: read each key's value and type (true).
    ///
    /// ```
    /// let opts = gears::Register::new().read_value(false);
    /// ```
    pub fn read_value(mut self, read_value: bool) -> Self {
        self.read_value = Some(read_value);
        self
    }

    /// The execution mode ([`Mode::Async`]; [`Mode::Sync`] for a CommandReader hook).
    ///
    /// ```
    /// let opts = gears::Register::new().mode(gears::Mode::Sync);
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// StreamReader: run when this many messages wait (1).
    ///
    /// ```
    /// let opts = gears::Register::new().batch(100);
    /// ```
    pub fn batch(mut self, batch: u64) -> Self {
        self.batch = Some(batch);
        self
    }

    /// StreamReader: or when the oldest waiting message is this many milliseconds old
    /// (0: no time limit).
    ///
    /// ```
    /// let opts = gears::Register::new().batch(100).duration(1000);
    /// ```
    pub fn duration(mut self, duration_ms: u64) -> Self {
        self.duration = Some(duration_ms);
        self
    }

    /// StreamReader: on a failed execution `continue` (default), `abort` (stop the
    /// registration) or `retry`.
    ///
    /// ```
    /// let opts = gears::Register::new().on_failed_policy("retry").on_failed_retry_interval(5);
    /// ```
    pub fn on_failed_policy(mut self, policy: impl Into<String>) -> Self {
        self.on_failed_policy = Some(policy.into());
        self
    }

    /// StreamReader: seconds between retries (1).
    ///
    /// ```
    /// let opts = gears::Register::new().on_failed_retry_interval(10);
    /// ```
    pub fn on_failed_retry_interval(mut self, seconds: u64) -> Self {
        self.on_failed_retry_interval = Some(seconds);
        self
    }

    /// StreamReader: trim the processed messages (true).
    ///
    /// ```
    /// let opts = gears::Register::new().trim_stream(false);
    /// ```
    pub fn trim_stream(mut self, trim: bool) -> Self {
        self.trim_stream = Some(trim);
        self
    }

    /// TimeReader: milliseconds between ticks (required).
    ///
    /// ```
    /// let opts = gears::Register::new().interval(100);
    /// ```
    pub fn interval(mut self, interval_ms: u64) -> Self {
        self.interval = Some(interval_ms);
        self
    }

    /// CommandReader: answer `RG.TRIGGER name args...` (the record is `[name, args...]`).
    ///
    /// ```
    /// let opts = gears::Register::new().trigger("wasm_echo");
    /// ```
    pub fn trigger(mut self, name: impl Into<String>) -> Self {
        self.trigger = Some(name.into());
        self
    }

    /// CommandReader: run instead of this Redis command (the record is
    /// `[command, args...]`); [`call_next`](crate::call_next) calls the command.
    ///
    /// ```
    /// let opts = gears::Register::new().hook("hset").keyprefix("user:");
    /// ```
    pub fn hook(mut self, command: impl Into<String>) -> Self {
        self.hook = Some(command.into());
        self
    }

    /// CommandReader hook: only when the command's first key starts with this prefix.
    ///
    /// ```
    /// let opts = gears::Register::new().hook("set").keyprefix("cache:");
    /// ```
    pub fn keyprefix(mut self, prefix: impl Into<String>) -> Self {
        self.keyprefix = Some(prefix.into());
        self
    }

    /// The registration's description (RG.DUMPREGISTRATIONS).
    ///
    /// ```
    /// let opts = gears::Register::new().desc("keeps all_keys");
    /// ```
    pub fn desc(mut self, desc: impl Into<String>) -> Self {
        self.desc = Some(desc.into());
        self
    }

    /// Append a `collect` step, as Python's `register(collect=True)` does (true).
    ///
    /// ```
    /// let opts = gears::Register::new().collect(false);
    /// ```
    pub fn collect(mut self, collect: bool) -> Self {
        self.collect = Some(collect);
        self
    }
}

/// A finished chain: what [`GearsBuilder::run`] and [`GearsBuilder::register`] return,
/// handed to [`Guest::job`] or [`Guest::registration`].
///
/// ```
/// use gears::{GearsBuilder, Plan, Run};
/// let plan: Plan = GearsBuilder::new("ShardsIDReader").run(Run::new());
/// ```
pub struct Plan {
    pub(crate) reader: String,
    pub(crate) reader_args: Vec<(&'static str, Value)>,
    pub(crate) steps: Vec<StepDef>,
    pub(crate) mode: Mode,
    pub(crate) desc: Option<String>,
    pub(crate) generator: Option<Callback>,
    pub(crate) errors: Vec<String>,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("reader", &self.reader)
            .field("reader_args", &self.reader_args)
            .field(
                "steps",
                &self.steps.iter().map(|s| s.op).collect::<Vec<_>>(),
            )
            .field("mode", &self.mode)
            .field("desc", &self.desc)
            .finish()
    }
}

/// A plan with its callbacks numbered, ready for the WIT `plan` record.
pub(crate) struct PlanOut {
    pub(crate) name: String,
    pub(crate) reader: String,
    pub(crate) reader_args: Vec<u8>,
    pub(crate) steps: Vec<StepOut>,
    pub(crate) mode: &'static str,
    pub(crate) desc: Option<String>,
}

pub(crate) struct StepOut {
    pub(crate) op: String,
    pub(crate) callbacks: Vec<u32>,
    pub(crate) args: Vec<u8>,
    pub(crate) name: String,
}

pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).expect("writing to a Vec cannot fail");
    out
}

/// What a guest offers: its jobs and registrations. The guest's describe function
/// (given to [`guest!`](crate::guest)) fills it.
///
/// ```no_run
/// use gears::{execute, GearsBuilder, Guest, KeyRecord, Register, Run};
///
/// fn describe(g: &mut Guest) {
///     g.job("keys", GearsBuilder::new("KeysOnlyReader").run(Run::new()));
///     g.registration(
///         GearsBuilder::new("KeysReader")
///             .filter(|r: KeyRecord| Ok(r.key != "all_keys"))
///             .foreach(|r: KeyRecord| {
///                 execute(["sadd", "all_keys", r.key.as_str()])?;
///                 Ok(())
///             })
///             .register(Register::new()),
///     );
/// }
/// gears::guest!(describe);
/// # fn main() {}
/// ```
#[derive(Default)]
pub struct Guest {
    pub(crate) jobs: Vec<PlanOut>,
    pub(crate) registrations: Vec<PlanOut>,
    pub(crate) callbacks: Vec<Callback>,
    pub(crate) errors: Vec<String>,
}

impl fmt::Debug for Guest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guest")
            .field(
                "jobs",
                &self.jobs.iter().map(|j| &j.name).collect::<Vec<_>>(),
            )
            .field("registrations", &self.registrations.len())
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

impl Guest {
    fn number(&mut self, plan: Plan, name: String) -> PlanOut {
        let mut args = plan.reader_args;
        if let Some(g) = plan.generator {
            args.push(("generator", Value::from(self.callbacks.len() as u64)));
            self.callbacks.push(g);
        }
        let steps = plan
            .steps
            .into_iter()
            .map(|s| {
                let mut idx = Vec::with_capacity(s.callbacks.len());
                for cb in s.callbacks {
                    idx.push(self.callbacks.len() as u32);
                    self.callbacks.push(cb);
                }
                StepOut {
                    op: s.op.to_string(),
                    callbacks: idx,
                    args: encode(&Value::Array(s.args)),
                    name: s.name,
                }
            })
            .collect();
        let map = Value::Map(args.into_iter().map(|(k, v)| (Value::from(k), v)).collect());
        PlanOut {
            name,
            reader: plan.reader,
            reader_args: encode(&map),
            steps,
            mode: plan.mode.as_str(),
            desc: plan.desc,
        }
    }

    /// Adds a job, run by `RG.WASMRUN guest name [arg...]`. Names must be unique and
    /// not empty.
    ///
    /// ```no_run
    /// use gears::{GearsBuilder, Guest, Run};
    /// fn describe(g: &mut Guest) {
    ///     g.job("count", GearsBuilder::new("KeysOnlyReader").count().run(Run::new()))
    ///      .job("shards", GearsBuilder::new("ShardsIDReader").run(Run::new()));
    /// }
    /// gears::guest!(describe);
    /// # fn main() {}
    /// ```
    pub fn job(&mut self, name: impl Into<String>, plan: Plan) -> &mut Self {
        let name = name.into();
        if name.is_empty() {
            self.errors.push("a job needs a name".into());
        } else if self.jobs.iter().any(|j| j.name == name) {
            self.errors.push(format!("two jobs are called '{name}'"));
        }
        for e in &plan.errors {
            self.errors.push(format!("job '{name}': {e}"));
        }
        let out = self.number(plan, name);
        self.jobs.push(out);
        self
    }

    /// Adds a registration, bound to its reader's events when the guest is uploaded
    /// (and again when Redis loads it).
    ///
    /// ```no_run
    /// use gears::{execute, GearsBuilder, Guest, Register, TimeRecord};
    /// fn describe(g: &mut Guest) {
    ///     g.registration(
    ///         GearsBuilder::new("TimeReader")
    ///             .foreach(|_t: TimeRecord| { execute(["incr", "ticks"])?; Ok(()) })
    ///             .register(Register::new().interval(1000)),
    ///     );
    /// }
    /// gears::guest!(describe);
    /// # fn main() {}
    /// ```
    pub fn registration(&mut self, plan: Plan) -> &mut Self {
        let n = self.registrations.len() + 1;
        for e in &plan.errors {
            self.errors
                .push(format!("registration {n} ({}): {e}", plan.reader));
        }
        let out = self.number(plan, String::new());
        self.registrations.push(out);
        self
    }
}
