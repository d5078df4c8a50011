//! A Plan as bytes and back: what another shard receives to run the same plan.
//!
//! The bytes are one MessagePack value (`codec`): a map of the reader spec, the steps
//! (with the text RG.GETEXECUTION shows for each), the mode, desc, and the host's name with
//! its reference to the code. User code never travels inside the steps: a step names it by
//! index, and the receiving shard resolves the reference to a host of its own that holds
//! the code (a guest it has by name and hash; a Python plan's unpickled objects).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use super::codec;
use super::plan::{
    Exchange, Host, HostStep, Mode, NativeStep, Plan, PlanArg, ReaderSpec, Step, StepKind,
};
use super::value::Value;

/// The layout of the bytes; a shard refuses bytes of another version.
const VERSION: i64 = 1;

/// Finds the host of a plan's code on this shard: (host name, reference) to a host.
pub type Resolve<'a> = &'a dyn Fn(&str, &Value) -> Result<Arc<dyn Host>>;

/// The tests' switch (`GEARS_TEST_PLAN_TRAVEL=1` in redis-server's environment, read at
/// load): every plan a front end builds goes through its bytes before it is used, as one
/// another shard receives would, so every black-box run proves the round trip.
static TRAVEL: AtomicBool = AtomicBool::new(false);

/// Sends every plan through its bytes from now on (the tests' switch).
pub fn travel_always() {
    TRAVEL.store(true, Ordering::Release);
}

impl Plan {
    /// The plan as another shard would receive it, when the tests' switch is on (else
    /// itself).
    pub fn travelled(self, resolve: Resolve) -> Result<Plan> {
        if !TRAVEL.load(Ordering::Acquire) {
            return Ok(self);
        }
        Plan::decode(&self.encode()?, resolve)
    }

    /// The plan as bytes (fails only when the host cannot name its code, e.g. a Python
    /// object that cannot be pickled).
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(codec::encode_one(&self.to_value(true)?))
    }

    /// The plan as bytes, and the bytes that identify it: the same without the text
    /// shown for each step (a Python function's shows its address, new in every run of
    /// the same script).
    pub fn encode_keyed(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = codec::encode_one(&self.to_value(false)?);
        Ok((self.encode()?, key))
    }

    fn to_value(&self, shown: bool) -> Result<Value> {
        let (host, code) = match &self.host {
            Some(h) => (Value::str(h.name()), h.reference()?),
            None => (Value::Nil, Value::Nil),
        };
        let map = Value::Map(vec![
            (Value::str("version"), Value::Int(VERSION)),
            (Value::str("reader"), Value::str(self.reader.name.as_str())),
            (
                Value::str("args"),
                Value::List(
                    self.reader
                        .args
                        .iter()
                        .map(|(n, a)| Value::List(vec![Value::str(n.as_str()), arg(a)]))
                        .collect(),
                ),
            ),
            (
                Value::str("steps"),
                Value::List(self.steps.iter().map(|s| step(s, shown)).collect()),
            ),
            (Value::str("mode"), Value::str(self.mode.as_str())),
            (
                Value::str("desc"),
                self.desc.clone().map_or(Value::Nil, Value::Str),
            ),
            (Value::str("host"), host),
            (Value::str("code"), code),
        ]);
        Ok(map)
    }

    /// A plan from `encode`'s bytes, its code resolved to a host of this shard.
    pub fn decode(bytes: &[u8], resolve: Resolve) -> Result<Plan> {
        let value = codec::decode(bytes).context("a plan's bytes")?;
        let field = |name: &str| {
            value
                .get(name)
                .ok_or_else(|| anyhow!("a plan without '{name}'"))
        };
        if int(field("version")?)? != VERSION {
            bail!("a plan of another version");
        }
        let reader = ReaderSpec {
            name: text(field("reader")?)?.to_string(),
            args: list(field("args")?)?
                .iter()
                .map(|pair| match list(pair)? {
                    [name, a] => Ok((text(name)?.to_string(), arg_of(a)?)),
                    _ => bail!("a reader argument is a (name, value) pair"),
                })
                .collect::<Result<_>>()?,
        };
        let steps = list(field("steps")?)?
            .iter()
            .map(step_of)
            .collect::<Result<_>>()?;
        let mode = Mode::parse(text(field("mode")?)?).ok_or_else(|| anyhow!("unknown mode"))?;
        let desc = match field("desc")? {
            Value::Nil => None,
            d => Some(text(d)?.to_string()),
        };
        let host = match field("host")? {
            Value::Nil => None,
            name => Some(resolve(text(name)?, field("code")?)?),
        };
        Ok(Plan {
            reader,
            steps,
            mode,
            desc,
            host,
        })
    }
}

fn arg(a: &PlanArg) -> Value {
    match a {
        PlanArg::Code(i) => Value::List(vec![Value::str("code"), Value::Int(*i as i64)]),
        PlanArg::Value(v) => Value::List(vec![Value::str("value"), v.clone()]),
    }
}

fn host_step(h: &HostStep) -> Value {
    Value::List(vec![
        Value::str(h.op),
        Value::List(h.args.iter().map(arg).collect()),
    ])
}

fn native(n: &NativeStep) -> Vec<Value> {
    let name = |s: &str| Value::str(s);
    match n {
        NativeStep::Limit { offset, length } => vec![
            name("limit"),
            Value::Int(*offset as i64),
            Value::Int(*length as i64),
        ],
        NativeStep::LocalCount => vec![name("localcount")],
        NativeStep::SumCounts => vec![name("sumcounts")],
        NativeStep::LocalCountBy => vec![name("localcountby")],
        NativeStep::SumCountsBy => vec![name("sumcountsby")],
        NativeStep::Distinct => vec![name("distinct")],
        NativeStep::LocalAvg => vec![name("localavg")],
        NativeStep::FinalAvg => vec![name("finalavg")],
        NativeStep::Sort { reverse } => vec![name("sort"), Value::Bool(*reverse)],
    }
}

fn step(s: &Step, shown: bool) -> Value {
    let kind = match &s.kind {
        StepKind::Host(h) => Value::List(vec![Value::str("host"), host_step(h)]),
        StepKind::Native(n) => {
            let mut v = vec![Value::str("native")];
            v.extend(native(n));
            Value::List(v)
        }
        StepKind::Exchange(Exchange::Collect) => Value::List(vec![Value::str("collect")]),
        StepKind::Exchange(Exchange::Repartition(by)) => Value::List(vec![
            Value::str("repartition"),
            by.as_ref().map_or(Value::Nil, host_step),
        ]),
    };
    Value::List(vec![
        Value::str(&*s.type_name),
        Value::str(&*s.name),
        Value::str(if shown { &*s.arg } else { "" }),
        kind,
    ])
}

fn list(v: &Value) -> Result<&[Value]> {
    match v {
        Value::List(items) => Ok(items),
        _ => bail!("expected a list in a plan"),
    }
}

fn text(v: &Value) -> Result<&str> {
    match v {
        Value::Str(s) => Ok(s),
        _ => bail!("expected a string in a plan"),
    }
}

fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => bail!("expected an integer in a plan"),
    }
}

fn count(v: &Value) -> Result<usize> {
    usize::try_from(int(v)?).map_err(|_| anyhow!("a negative count in a plan"))
}

fn arg_of(v: &Value) -> Result<PlanArg> {
    match list(v)? {
        [tag, Value::Int(i)] if text(tag)? == "code" => Ok(PlanArg::Code(
            u32::try_from(*i).map_err(|_| anyhow!("a bad code index in a plan"))?,
        )),
        [tag, v] if text(tag)? == "value" => Ok(PlanArg::Value(v.clone())),
        _ => bail!("a bad argument in a plan"),
    }
}

fn host_step_of(v: &Value) -> Result<HostStep> {
    match list(v)? {
        [op, args] => {
            let args = list(args)?.iter().map(arg_of).collect::<Result<_>>()?;
            let op = text(op)?;
            HostStep::new(op, args).ok_or_else(|| anyhow!("unknown host operation '{op}'"))
        }
        _ => bail!("a bad host step in a plan"),
    }
}

fn native_of(v: &[Value]) -> Result<NativeStep> {
    let name = text(
        v.first()
            .ok_or_else(|| anyhow!("a native step without a name"))?,
    )?;
    Ok(match (name, &v[1..]) {
        ("limit", [offset, length]) => NativeStep::Limit {
            offset: count(offset)?,
            length: count(length)?,
        },
        ("localcount", []) => NativeStep::LocalCount,
        ("sumcounts", []) => NativeStep::SumCounts,
        ("localcountby", []) => NativeStep::LocalCountBy,
        ("sumcountsby", []) => NativeStep::SumCountsBy,
        ("distinct", []) => NativeStep::Distinct,
        ("localavg", []) => NativeStep::LocalAvg,
        ("finalavg", []) => NativeStep::FinalAvg,
        ("sort", [Value::Bool(reverse)]) => NativeStep::Sort { reverse: *reverse },
        _ => bail!("unknown native step '{name}'"),
    })
}

fn step_of(v: &Value) -> Result<Step> {
    let [type_name, name, shown, kind] = list(v)? else {
        bail!("a bad step in a plan");
    };
    let kind = match list(kind)? {
        [tag, h] if text(tag)? == "host" => StepKind::Host(host_step_of(h)?),
        [tag, rest @ ..] if text(tag)? == "native" => StepKind::Native(native_of(rest)?),
        [tag] if text(tag)? == "collect" => StepKind::Exchange(Exchange::Collect),
        [tag, by] if text(tag)? == "repartition" => {
            StepKind::Exchange(Exchange::Repartition(match by {
                Value::Nil => None,
                h => Some(host_step_of(h)?),
            }))
        }
        _ => bail!("a bad step kind in a plan"),
    };
    Ok(Step {
        kind,
        type_name: text(type_name)?.into(),
        name: text(name)?.into(),
        arg: text(shown)?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::compile::Stage;
    use crate::engine::operator::{Operator, Pass};
    use crate::engine::plan::OutputForm;
    use std::sync::Mutex;

    /// A host whose code is a list of names; it records what it was asked to fuse.
    struct FakeHost {
        code: Vec<String>,
        fused: Mutex<Vec<String>>,
    }

    impl Host for FakeHost {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn reference(&self) -> Result<Value> {
            Ok(Value::List(
                self.code.iter().map(|c| Value::str(c.as_str())).collect(),
            ))
        }
        fn fuse(
            &self,
            steps: &[HostStep],
            output: OutputForm,
            _: bool,
            _: bool,
        ) -> Result<Box<dyn Operator>> {
            // What the group runs, with each code index resolved through this host's code.
            let shown: Vec<String> = steps
                .iter()
                .map(|s| {
                    let args: Vec<String> = s
                        .args
                        .iter()
                        .map(|a| match a {
                            PlanArg::Code(i) => self.code[*i as usize].clone(),
                            PlanArg::Value(v) => format!("{v:?}"),
                        })
                        .collect();
                    format!("{}({})", s.op, args.join(","))
                })
                .collect();
            self.fused
                .lock()
                .unwrap()
                .push(format!("{} -> {output:?}", shown.join(" ")));
            Ok(Box::new(Pass))
        }
    }

    fn resolve(name: &str, code: &Value) -> Result<Arc<dyn Host>> {
        if name != "fake" {
            bail!("no host '{name}'");
        }
        let code = list(code)?
            .iter()
            .map(|c| text(c).map(str::to_string))
            .collect::<Result<_>>()?;
        Ok(Arc::new(FakeHost {
            code,
            fused: Mutex::new(Vec::new()),
        }))
    }

    fn step(kind: StepKind, type_name: &str) -> Step {
        Step {
            kind,
            type_name: type_name.into(),
            name: "cb".into(),
            arg: "<lambda>".into(),
        }
    }

    fn host(op: &str, args: Vec<PlanArg>) -> StepKind {
        StepKind::Host(HostStep::new(op, args).unwrap())
    }

    /// Every kind of step, argument and exchange.
    fn plan() -> (Plan, Arc<FakeHost>) {
        let fake = Arc::new(FakeHost {
            code: vec!["split".into(), "key".into(), "add".into(), "gen".into()],
            fused: Mutex::new(Vec::new()),
        });
        let mut reader = ReaderSpec::new("GeneratorReader");
        reader.set("generator", PlanArg::Code(3));
        reader.set("args", PlanArg::Value(Value::List(vec![Value::str("x")])));
        let steps = vec![
            step(host("flatmap", vec![PlanArg::Code(0)]), "FlatMapStep"),
            step(host("map", vec![PlanArg::Code(1)]), "ExtractKeyStep"),
            step(
                StepKind::Native(NativeStep::LocalCountBy),
                "AccumulateByKeyStep",
            ),
            step(
                StepKind::Exchange(Exchange::Repartition(None)),
                "RepartitionStep",
            ),
            step(
                StepKind::Native(NativeStep::SumCountsBy),
                "AccumulateByKeyStep",
            ),
            step(
                StepKind::Exchange(Exchange::Repartition(Some(
                    HostStep::new("map", vec![PlanArg::Code(1)]).unwrap(),
                ))),
                "RepartitionStep",
            ),
            step(
                host(
                    "aggregate_local",
                    vec![PlanArg::Value(Value::Int(0)), PlanArg::Code(2)],
                ),
                "AccumulateStep",
            ),
            step(
                StepKind::Native(NativeStep::Limit {
                    offset: 2,
                    length: 10,
                }),
                "LimitStep",
            ),
            step(
                StepKind::Native(NativeStep::Sort { reverse: true }),
                "AccumulateStep",
            ),
            step(StepKind::Exchange(Exchange::Collect), "CollectStep"),
            step(StepKind::Native(NativeStep::Distinct), "AccumulateStep"),
            step(StepKind::Native(NativeStep::LocalAvg), "AccumulateStep"),
            step(StepKind::Native(NativeStep::FinalAvg), "AccumulateStep"),
            step(StepKind::Native(NativeStep::LocalCount), "AccumulateStep"),
            step(StepKind::Native(NativeStep::SumCounts), "AccumulateStep"),
        ];
        let plan = Plan {
            reader,
            steps,
            mode: Mode::Async,
            desc: Some("every kind".into()),
            host: Some(fake.clone()),
        };
        (plan, fake)
    }

    /// What a compiled plan is made of, in comparable form.
    fn shape(stages: &[Stage]) -> Vec<String> {
        stages
            .iter()
            .map(|s| {
                format!(
                    "{:?} ops {} extract {} exchange {:?}",
                    s.op_steps,
                    s.ops.len(),
                    s.extract.is_some(),
                    s.exchange
                )
            })
            .collect()
    }

    #[test]
    fn a_plan_round_trips_and_compiles_to_the_same_stages() {
        let (plan, fake) = plan();
        let bytes = plan.encode().unwrap();
        let back = Plan::decode(&bytes, &resolve).unwrap();

        assert_eq!(back.encode().unwrap(), bytes);
        assert_eq!(back.mode, Mode::Async);
        assert_eq!(back.desc.as_deref(), Some("every kind"));
        assert_eq!(back.text(), plan.text());
        assert_eq!(format!("{:?}", back.reader), format!("{:?}", plan.reader));
        assert_eq!(format!("{:?}", back.steps), format!("{:?}", plan.steps));

        for (profile, sync) in [(false, false), (true, true)] {
            let here = plan.compile(profile, sync).unwrap();
            let there = back.compile(profile, sync).unwrap();
            assert_eq!(shape(&here), shape(&there));
            assert_eq!(here.len(), 4);
        }
        // The decoded plan's host resolved the same code for the same groups.
        let there = back.host.as_ref().unwrap().reference().unwrap();
        assert_eq!(
            format!("{there:?}"),
            format!("{:?}", fake.reference().unwrap())
        );
        let fused = fake.fused.lock().unwrap().clone();
        assert_eq!(
            fused[..3],
            [
                "flatmap(split) map(key) -> Values".to_string(),
                "map(key) -> Values".to_string(),
                "aggregate_local(Int(0),add) -> Values".to_string(),
            ]
        );
    }

    #[test]
    fn a_plan_of_native_steps_needs_no_host() {
        let plan = Plan {
            reader: ReaderSpec::new("KeysReader"),
            steps: vec![step(
                StepKind::Native(NativeStep::Distinct),
                "AccumulateStep",
            )],
            mode: Mode::AsyncLocal,
            desc: None,
            host: None,
        };
        let nobody = |_: &str, _: &Value| -> Result<Arc<dyn Host>> { bail!("no host") };
        let back = Plan::decode(&plan.encode().unwrap(), &nobody).unwrap();
        assert!(back.host.is_none());
        assert_eq!(back.mode, Mode::AsyncLocal);
    }

    #[test]
    fn bad_bytes_are_errors() {
        let (plan, _) = plan();
        let bytes = plan.encode().unwrap();
        assert!(Plan::decode(&bytes[..bytes.len() - 1], &resolve).is_err());
        assert!(Plan::decode(b"\x90", &resolve).is_err());
        let nobody = |_: &str, _: &Value| -> Result<Arc<dyn Host>> { bail!("no host here") };
        let e = Plan::decode(&bytes, &nobody).err().unwrap();
        assert!(format!("{e:#}").contains("no host here"));
        // An operation no host runs.
        let mut forged = bytes.clone();
        let at = forged.windows(7).position(|w| w == b"flatmap").unwrap();
        forged[at + 5] = b'o';
        let e = Plan::decode(&forged, &resolve).err().unwrap();
        assert!(format!("{e:#}").contains("flatmop"), "{e:#}");
    }
}
