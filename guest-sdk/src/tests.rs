//! Native tests of the guest runtime: describe, fused runs and generators, called as
//! Rust functions (no wasm), the way the host calls them through the component.

use std::cell::RefCell;

use rmpv::Value;
use serde::{Deserialize, Serialize};

use crate::__rt::{self as rt, BatchOut, Description, FusedStep};
use crate::{Error, GearsBuilder, Guest, KeyRecord, Mode, Register, Run, View};

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn note(s: String) {
    LOG.with(|l| l.borrow_mut().push(s));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

fn pack(records: Vec<Value>) -> Vec<u8> {
    crate::builder::encode(&Value::Array(records))
}

fn unpack(bytes: &[u8]) -> Value {
    rmpv::decode::read_value(&mut &bytes[..]).unwrap()
}

fn records(out: &BatchOut) -> Vec<Value> {
    match unpack(&out.records) {
        Value::Array(items) => items,
        other => panic!("not an array: {other}"),
    }
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn kv(k: Value, v: Value) -> Value {
    Value::Map(vec![(s("key"), k), (s("value"), v)])
}

fn job<'a>(d: &'a Description, name: &str) -> &'a rt::WitPlan {
    d.jobs.iter().find(|j| j.name == name).expect("job exists")
}

fn step(op: &str, callbacks: Vec<u32>, zero: Option<Value>) -> FusedStep {
    FusedStep {
        op: op.into(),
        callbacks,
        zero: zero.map(|z| crate::builder::encode(&z)),
    }
}

/// The callbacks of step `i` of job `name`.
fn cbs(d: &Description, name: &str, i: usize) -> Vec<u32> {
    job(d, name).steps[i].callbacks.clone()
}

/// Opens a run, pushes the batches, finishes: (records, errors) of everything.
fn run_all(
    f: rt::DescribeFn,
    steps: Vec<FusedStep>,
    batches: Vec<Vec<Value>>,
) -> (Vec<Value>, Vec<String>) {
    let h = rt::open_run(f, steps).unwrap();
    let (mut recs, mut errs) = (Vec::new(), Vec::new());
    for b in batches {
        let out = rt::push(h, pack(b)).unwrap();
        recs.extend(records(&out));
        errs.extend(out.errors);
    }
    let out = rt::finish(h).unwrap();
    recs.extend(records(&out));
    errs.extend(out.errors);
    rt::close(h);
    (recs, errs)
}

// -------------------------------------------------------------------------------------

fn describe_chain(g: &mut Guest) {
    g.job(
        "chain",
        GearsBuilder::new("KeysOnlyReader")
            .map(|k: String| {
                note(format!("map {k}"));
                if k.contains("bad") {
                    Err(Error::msg(format!("bad key {k}")))
                } else {
                    Ok(k.to_uppercase())
                }
            })
            .flatmap(|k: String| {
                note(format!("flatmap {k}"));
                Ok(vec![format!("{k}.1"), format!("{k}.2")])
            })
            .foreach(|k: String| {
                note(format!("foreach {k}"));
                if k == "B.1" {
                    return Err(Error::msg("no B.1"));
                }
                Ok(())
            })
            .run(Run::new()),
    );
}

#[test]
fn depth_first_and_one_error_drops_one_record() {
    let d = rt::describe(describe_chain).unwrap();
    let steps = vec![
        step("map", cbs(&d, "chain", 0), None),
        step("flatmap", cbs(&d, "chain", 1), None),
        step("foreach", cbs(&d, "chain", 2), None),
    ];
    let (recs, errs) = run_all(describe_chain, steps, vec![vec![s("a"), s("bad1"), s("b")]]);
    assert_eq!(recs, vec![s("A.1"), s("A.2"), s("B.2")]);
    assert_eq!(errs, vec!["bad key bad1".to_string(), "no B.1".to_string()]);
    assert_eq!(
        take_log(),
        [
            "map a",
            "flatmap A",
            "foreach A.1",
            "foreach A.2",
            "map bad1",
            "map b",
            "flatmap B",
            "foreach B.1",
            "foreach B.2"
        ]
    );
}

#[test]
fn a_record_of_the_wrong_type_is_an_error_of_that_record() {
    let d = rt::describe(describe_chain).unwrap();
    let (recs, errs) = run_all(
        describe_chain,
        vec![step("map", cbs(&d, "chain", 0), None)],
        vec![vec![s("a"), Value::from(5), s("c")]],
    );
    assert_eq!(recs, vec![s("A"), s("C")]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("cannot decode the record as alloc::string::String"),
        "{}",
        errs[0]
    );
    take_log();
}

#[derive(Deserialize)]
struct OnlyKey {
    key: String,
}

fn describe_filter(g: &mut Guest) {
    g.job(
        "f",
        GearsBuilder::new("KeysReader")
            .filter(|r: OnlyKey| Ok(r.key != "all_keys"))
            .run(Run::new()),
    );
}

#[test]
fn filter_passes_the_original_record() {
    let d = rt::describe(describe_filter).unwrap();
    let rec = |k: &str| {
        Value::Map(vec![
            (s("key"), s(k)),
            (s("value"), s("v")),
            (s("type"), s("string")),
            (s("event"), Value::Nil),
        ])
    };
    let (recs, errs) = run_all(
        describe_filter,
        vec![step("filter", cbs(&d, "f", 0), None)],
        vec![vec![rec("x"), rec("all_keys"), rec("y")]],
    );
    assert_eq!(recs, vec![rec("x"), rec("y")]);
    assert!(errs.is_empty());
}

fn describe_acc(g: &mut Guest) {
    g.job(
        "acc",
        GearsBuilder::new("KeysOnlyReader")
            .accumulate(|a: Option<i64>, k: String| {
                note(format!("{a:?}"));
                if k == "bad" {
                    return Err(Error::msg("bad"));
                }
                Ok(a.unwrap_or(0) + k.len() as i64)
            })
            .map(|n: i64| Ok(n * 10))
            .run(Run::new()),
    );
}

#[test]
fn accumulate_starts_at_none_and_emits_at_finish() {
    let d = rt::describe(describe_acc).unwrap();
    let steps = || {
        vec![
            step("accumulate", cbs(&d, "acc", 0), None),
            step("map", cbs(&d, "acc", 1), None),
        ]
    };
    let h = rt::open_run(describe_acc, steps()).unwrap();
    let out = rt::push(h, pack(vec![s("ab"), s("bad")])).unwrap();
    assert!(records(&out).is_empty());
    assert_eq!(out.errors, vec!["bad"]);
    let out = rt::push(h, pack(vec![s("cde")])).unwrap();
    assert!(records(&out).is_empty());
    let out = rt::finish(h).unwrap();
    assert_eq!(records(&out), vec![Value::from(50)]);
    assert_eq!(take_log(), ["None", "Some(2)", "Some(2)"]);
    rt::close(h);

    // no input, no output
    let (recs, errs) = run_all(describe_acc, steps(), vec![vec![]]);
    assert!(recs.is_empty() && errs.is_empty());
}

fn describe_groups(g: &mut Guest) {
    g.job(
        "lg",
        GearsBuilder::new("KeysOnlyReader")
            .localgroupby(
                |k: String| Ok(k.split(':').next().unwrap_or("").to_string()),
                |p: String, a: Option<Vec<String>>, k: String| {
                    if k.ends_with(":bad") {
                        return Err(Error::msg(format!("bad in {p}")));
                    }
                    let mut a = a.unwrap_or_default();
                    a.push(k);
                    Ok(a)
                },
            )
            .run(Run::new()),
    );
    g.job(
        "agg",
        GearsBuilder::new("KeysOnlyReader")
            .aggregate(
                Vec::<String>::new(),
                |mut a: Vec<String>, k: String| {
                    a.push(k);
                    Ok(a)
                },
                |mut a: Vec<String>, b: Vec<String>| {
                    a.extend(b);
                    Ok(a)
                },
            )
            .run(Run::new()),
    );
    g.job(
        "aggby",
        GearsBuilder::new("KeysOnlyReader")
            .aggregateby(
                |k: String| Ok(k.len()),
                Vec::<String>::new(),
                |_n: usize, mut a: Vec<String>, k: String| {
                    a.push(k);
                    Ok(a)
                },
                |_n: usize, mut a: Vec<String>, b: Vec<String>| {
                    a.extend(b);
                    Ok(a)
                },
            )
            .run(Run::new()),
    );
    g.job(
        "bg",
        GearsBuilder::new("KeysOnlyReader")
            .batchgroupby(
                |k: String| Ok(k.len()),
                |n: usize, ks: Vec<String>| {
                    if n == 0 {
                        return Err(Error::msg("empty group"));
                    }
                    Ok(ks.join("+"))
                },
            )
            .run(Run::new()),
    );
}

#[test]
fn localgroupby_groups_in_first_seen_order() {
    let d = rt::describe(describe_groups).unwrap();
    let (recs, errs) = run_all(
        describe_groups,
        vec![step("localgroupby", cbs(&d, "lg", 0), None)],
        vec![
            vec![s("b:1"), s("a:1"), s("c:bad")],
            vec![s("b:2"), s("c:1")],
        ],
    );
    let list = |xs: &[&str]| Value::Array(xs.iter().map(|x| s(x)).collect());
    assert_eq!(
        recs,
        vec![
            kv(s("b"), list(&["b:1", "b:2"])),
            kv(s("a"), list(&["a:1"])),
            kv(s("c"), list(&["c:1"])),
        ]
    );
    assert_eq!(errs, vec!["bad in c"]);
}

#[test]
fn aggregate_starts_every_phase_from_zero() {
    let d = rt::describe(describe_groups).unwrap();
    let [seq, comb] = cbs(&d, "agg", 0)[..] else {
        panic!()
    };
    let zero = Value::Array(vec![]);
    // the step's args carry the zero too
    assert_eq!(
        unpack(&job(&d, "agg").steps[0].args),
        Value::Array(vec![zero.clone()])
    );
    let (local, _) = run_all(
        describe_groups,
        vec![step("aggregate_local", vec![seq], Some(zero.clone()))],
        vec![vec![s("x"), s("y")]],
    );
    assert_eq!(local, vec![Value::Array(vec![s("x"), s("y")])]);
    let (global, errs) = run_all(
        describe_groups,
        vec![step("aggregate_local", vec![comb], Some(zero.clone()))],
        vec![vec![
            Value::Array(vec![s("x"), s("y")]),
            Value::Array(vec![s("z")]),
        ]],
    );
    assert_eq!(global, vec![Value::Array(vec![s("x"), s("y"), s("z")])]);
    assert!(errs.is_empty());
    // no input: nothing (the host turns it into zero if it must)
    let (none, _) = run_all(
        describe_groups,
        vec![step("aggregate_local", vec![seq], Some(zero))],
        vec![],
    );
    assert!(none.is_empty());
}

#[test]
fn aggregateby_local_and_global() {
    let d = rt::describe(describe_groups).unwrap();
    let [extract, seq, comb] = cbs(&d, "aggby", 0)[..] else {
        panic!()
    };
    let zero = Value::Array(vec![]);
    let (local, errs) = run_all(
        describe_groups,
        vec![step(
            "aggregateby_local",
            vec![extract, seq],
            Some(zero.clone()),
        )],
        vec![vec![s("aa"), s("b"), s("cc")]],
    );
    assert!(errs.is_empty());
    assert_eq!(
        local,
        vec![
            kv(Value::from(2), Value::Array(vec![s("aa"), s("cc")])),
            kv(Value::from(1), Value::Array(vec![s("b")])),
        ]
    );
    let (global, errs) = run_all(
        describe_groups,
        vec![step("aggregateby_global", vec![comb], Some(zero))],
        vec![vec![
            kv(Value::from(2), Value::Array(vec![s("aa")])),
            kv(Value::from(1), Value::Array(vec![s("b")])),
            kv(Value::from(2), Value::Array(vec![s("dd")])),
            s("not a pair"),
        ]],
    );
    assert_eq!(
        global,
        vec![
            kv(Value::from(2), Value::Array(vec![s("aa"), s("dd")])),
            kv(Value::from(1), Value::Array(vec![s("b")])),
        ]
    );
    assert_eq!(errs.len(), 1);
}

#[test]
fn batchgroupby_reduces_each_group_once() {
    let d = rt::describe(describe_groups).unwrap();
    let (recs, errs) = run_all(
        describe_groups,
        vec![step("batchgroupby_local", cbs(&d, "bg", 0), None)],
        vec![vec![s("ab"), s("c"), s("")], vec![s("de")]],
    );
    assert_eq!(
        recs,
        vec![kv(Value::from(2), s("ab+de")), kv(Value::from(1), s("c"))]
    );
    assert_eq!(errs, vec!["empty group"]);
}

#[test]
fn stateful_steps_flush_in_order_through_the_next_steps() {
    // localgroupby then accumulate: the groups reach the accumulator at finish
    fn describe(g: &mut Guest) {
        g.job(
            "j",
            GearsBuilder::new("KeysOnlyReader")
                .localgroupby(
                    |k: String| Ok(k.len()),
                    |_n: usize, a: Option<i64>, _k: String| Ok(a.unwrap_or(0) + 1),
                )
                .accumulate(|a: Option<i64>, g: crate::GroupResult<usize, i64>| {
                    Ok(a.unwrap_or(0) + g.value * 100 + g.key as i64)
                })
                .run(Run::new()),
        );
    }
    let d = rt::describe(describe).unwrap();
    let (recs, _) = run_all(
        describe,
        vec![
            step("localgroupby", cbs(&d, "j", 0), None),
            step("accumulate", cbs(&d, "j", 1), None),
        ],
        vec![vec![s("a"), s("bb"), s("c")]],
    );
    assert_eq!(recs, vec![Value::from(200 + 1 + 100 + 2)]);
}

#[test]
fn open_run_checks_ops_and_callbacks() {
    let d = rt::describe(describe_groups).unwrap();
    let [extract, reduce] = cbs(&d, "lg", 0)[..] else {
        panic!()
    };
    let err = |steps| rt::open_run(describe_groups, steps).unwrap_err();
    assert!(
        err(vec![step("groupby", vec![extract, reduce], None)]).contains("unknown op 'groupby'")
    );
    let e = err(vec![step("map", vec![reduce], None)]);
    assert!(
        e.contains("is a groupby reduce function") && e.contains("expected map"),
        "{e}"
    );
    let e = err(vec![step("localgroupby", vec![reduce, extract], None)]);
    assert!(e.contains("position 0"), "{e}");
    assert!(err(vec![step("localgroupby", vec![extract], None)]).contains("takes 2 callback(s)"));
    assert!(err(vec![step("map", vec![999], None)]).contains("callback 999 does not exist"));
    let [seq, _] = cbs(&d, "agg", 0)[..] else {
        panic!()
    };
    assert!(err(vec![step("aggregate_local", vec![seq], None)]).contains("needs a zero"));
    // the ones that fit open fine
    let h = rt::open_run(
        describe_groups,
        vec![
            step("map", vec![extract], None),
            step("aggregate_local", vec![seq], Some(Value::Array(vec![]))),
        ],
    )
    .unwrap();
    rt::close(h);
    assert!(rt::push(h, pack(vec![]))
        .unwrap_err()
        .contains("no run or generator"));
    assert!(rt::finish(12345).is_err());
}

#[test]
fn a_fresh_instance_builds_its_callback_table_on_first_use() {
    // no describe() first, as in a new instance that only runs
    let h = rt::open_run(describe_chain, vec![step("map", vec![0], None)]).unwrap();
    let out = rt::push(h, pack(vec![s("q")])).unwrap();
    assert_eq!(records(&out), vec![s("Q")]);
    take_log();
}

#[test]
fn push_needs_an_array() {
    let h = rt::open_run(describe_chain, vec![]).unwrap();
    assert!(rt::push(h, crate::builder::encode(&s("x")))
        .unwrap_err()
        .contains("not a MessagePack array"));
    let out = rt::push(h, pack(vec![s("x"), Value::Nil])).unwrap();
    assert_eq!(records(&out), vec![s("x"), Value::Nil]);
}

// -------------------------------------------------------------------------------------
// generators

fn describe_gen(g: &mut Guest) {
    g.job(
        "gen",
        GearsBuilder::generator(|args: Vec<String>| {
            let n = args.len();
            let mut out: Vec<Value> = args.into_iter().map(Value::from).collect();
            out.push(Value::from(n));
            Ok(out)
        })
        .run(Run::new()),
    );
    g.job(
        "count",
        GearsBuilder::generator(|args: Vec<String>| {
            let n: u64 = args.first().map(|a| a.parse()).transpose()?.unwrap_or(3);
            Ok(0..n)
        })
        .run(Run::new().collect(false)),
    );
}

#[test]
fn generator_yields_in_batches_until_empty() {
    let d = rt::describe(describe_gen).unwrap();
    let args = unpack(&job(&d, "gen").reader_args);
    assert_eq!(args, Value::Map(vec![(s("generator"), Value::from(0))]));
    let g = rt::open_generator(describe_gen, 0, vec!["a".into(), "b".into(), "c".into()]).unwrap();
    assert_eq!(
        unpack(&rt::next_records(g, 2).unwrap()),
        Value::Array(vec![s("a"), s("b")])
    );
    assert_eq!(
        unpack(&rt::next_records(g, 2).unwrap()),
        Value::Array(vec![s("c"), Value::from(3)])
    );
    assert_eq!(
        unpack(&rt::next_records(g, 2).unwrap()),
        Value::Array(vec![])
    );
    rt::close(g);

    let gen_idx = match unpack(&job(&d, "count").reader_args)["generator"] {
        Value::Integer(i) => i.as_u64().unwrap() as u32,
        ref other => panic!("{other}"),
    };
    let g = rt::open_generator(describe_gen, gen_idx, vec!["5".into()]).unwrap();
    assert_eq!(
        unpack(&rt::next_records(g, 100).unwrap())
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let e = rt::open_generator(describe_gen, gen_idx, vec!["x".into()]).unwrap_err();
    assert_eq!(e, "invalid digit found in string");
    assert!(rt::open_generator(describe_gen, 7, vec![])
        .unwrap_err()
        .contains("does not exist"));
    assert!(rt::push(g, pack(vec![]))
        .unwrap_err()
        .contains("is a generator"));
}

// -------------------------------------------------------------------------------------
// describe

fn describe_recipes(g: &mut Guest) {
    g.job(
        "count",
        GearsBuilder::new("KeysOnlyReader")
            .map(|key: String| Ok(key))
            .filter(|g: Option<String>| Ok(g.is_some()))
            .countby_record()
            .run(Run::new().pattern("movie:*")),
    );
    g.registration(
        GearsBuilder::new("KeysReader")
            .filter(|r: KeyRecord| Ok(r.key != "all_keys"))
            .foreach(|_r: KeyRecord| Ok(()))
            .register(Register::new().mode(Mode::Async)),
    );
    g.registration(
        GearsBuilder::new("CommandReader")
            .map(|v: Value| Ok(v))
            .register(
                Register::new()
                    .hook("hset")
                    .keyprefix("whook:")
                    .collect(false),
            ),
    );
    g.registration(
        GearsBuilder::new("KeysReader").register(
            Register::new()
                .prefix("wmiss:*")
                .event_types(["keymiss"])
                .desc("misses"),
        ),
    );
    g.job(
        "limit",
        GearsBuilder::new("KeysOnlyReader")
            .sort(false)
            .limit(2, 1)
            .run(Run::new()),
    );
}

fn map_of(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

#[test]
fn describe_reports_plans_like_python() {
    let d = rt::describe(describe_recipes).unwrap();
    let count = job(&d, "count");
    assert_eq!(count.reader, "KeysOnlyReader");
    assert_eq!(count.mode, "async");
    assert_eq!(
        unpack(&count.reader_args),
        map_of(&[
            ("pattern", s("movie:*")),
            ("count", Value::from(1000)),
            ("noScan", Value::from(false)),
        ])
    );
    let ops: Vec<&str> = count.steps.iter().map(|s| s.op.as_str()).collect();
    assert_eq!(ops, ["map", "filter", "countby", "collect"]);
    assert_eq!(count.steps[0].callbacks, vec![0]);
    assert_eq!(count.steps[1].callbacks, vec![1]);
    assert!(count.steps[2].callbacks.is_empty());
    assert!(
        count.steps[0].name.contains("describe_recipes"),
        "{}",
        count.steps[0].name
    );
    assert_eq!(unpack(&count.steps[2].args), Value::Array(vec![]));

    let limit = job(&d, "limit");
    assert_eq!(
        unpack(&limit.steps[0].args),
        Value::Array(vec![Value::from(false)])
    );
    assert_eq!(
        unpack(&limit.steps[1].args),
        Value::Array(vec![Value::from(2), Value::from(1)])
    );

    let [keys, hook, miss] = &d.registrations[..] else {
        panic!()
    };
    assert_eq!(keys.name, "");
    assert_eq!(
        unpack(&keys.reader_args),
        map_of(&[("prefix", s("*")), ("readValue", Value::from(true))])
    );
    assert_eq!(keys.steps.last().unwrap().op, "collect");
    assert_eq!(hook.mode, "sync", "a hook runs sync by default");
    assert_eq!(
        unpack(&hook.reader_args),
        map_of(&[("hook", s("hset")), ("keyprefix", s("whook:"))])
    );
    assert_eq!(hook.steps.len(), 1, "collect(false)");
    assert_eq!(miss.desc.as_deref(), Some("misses"));
    assert_eq!(
        unpack(&miss.reader_args),
        map_of(&[
            ("prefix", s("wmiss:*")),
            ("readValue", Value::from(true)),
            ("eventTypes", Value::Array(vec![s("keymiss")])),
        ])
    );
}

fn describe_mistakes(g: &mut Guest) {
    g.job("a", GearsBuilder::new("NoSuchReader").run(Run::new()));
    g.job("b", GearsBuilder::new("CommandReader").run(Run::new()));
    g.job(
        "c",
        GearsBuilder::new("StreamReader").run(Run::new().pattern("x")),
    );
    g.job("c", GearsBuilder::new("ShardsIDReader").run(Run::new()));
    g.registration(GearsBuilder::new("TimeReader").register(Register::new()));
    g.registration(GearsBuilder::new("KeysOnlyReader").register(Register::new()));
    g.registration(
        GearsBuilder::new("StreamReader")
            .register(Register::new().mode(Mode::Sync).on_failed_policy("abort")),
    );
}

#[test]
fn describe_fails_with_every_mistake() {
    let e = rt::describe(describe_mistakes).unwrap_err();
    for part in [
        "job 'a': unknown reader 'NoSuchReader'",
        "job 'b': CommandReader does not support run()",
        "job 'c': run() of StreamReader does not take pattern",
        "two jobs are called 'c'",
        "registration 1 (TimeReader): register(): TimeReader needs interval",
        "registration 2 (KeysOnlyReader): register() of KeysOnlyReader is not available",
        "sync mode allows only on_failed_policy 'continue'",
    ] {
        assert!(e.contains(part), "{part} not in {e}");
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Movie {
    title: String,
    year: i64,
}

fn describe_structs(g: &mut Guest) {
    g.job(
        "m",
        GearsBuilder::new("KeysOnlyReader")
            .map(|title: String| Ok(Movie { title, year: 2000 }))
            .map(|m: Movie| {
                Ok(Movie {
                    year: m.year + 1,
                    ..m
                })
            })
            .run(Run::new()),
    );
}

#[test]
fn structs_cross_as_maps() {
    let d = rt::describe(describe_structs).unwrap();
    let (recs, _) = run_all(
        describe_structs,
        vec![
            step("map", cbs(&d, "m", 0), None),
            step("map", cbs(&d, "m", 1), None),
        ],
        vec![vec![s("Snatch")]],
    );
    assert_eq!(
        recs,
        vec![map_of(&[
            ("title", s("Snatch")),
            ("year", Value::from(2001))
        ])]
    );
}

// -------------------------------------------------------------------------------------

fn describe_split(g: &mut Guest) {
    g.job(
        "split",
        GearsBuilder::new("KeysOnlyReader")
            .flatmap(|k: String| {
                if k == "n" {
                    // A record that is not a string: it is counted on its own.
                    return Ok(vec![Value::from(7)]);
                }
                Ok(k.split(',').map(Value::from).collect::<Vec<_>>())
            })
            .run(Run::new()),
    );
}

#[test]
fn combine_countby_sends_one_partial_per_genre_per_batch() {
    let d = rt::describe(describe_split).unwrap();
    let steps = vec![
        step("flatmap", cbs(&d, "split", 0), None),
        step("combine_countby", vec![], None),
    ];
    let batches = vec![
        vec![s("drama,comedy"), s("drama"), s("n"), s("comedy,drama")],
        vec![s("horror"), s("drama")],
    ];
    let (recs, errs) = run_all(describe_split, steps, batches);
    assert!(errs.is_empty(), "{errs:?}");
    let int = |n: i64| Value::from(n);
    assert_eq!(
        recs,
        vec![
            // First batch: counts up to the int, the int alone, then counts after it.
            kv(s("drama"), int(2)),
            kv(s("comedy"), int(1)),
            kv(int(7), int(1)),
            kv(s("comedy"), int(1)),
            kv(s("drama"), int(1)),
            // Second batch.
            kv(s("horror"), int(1)),
            kv(s("drama"), int(1)),
        ]
    );
}

#[test]
fn combine_count_sends_one_count_per_batch_with_records() {
    let d = rt::describe(describe_split).unwrap();
    let steps = vec![
        step("flatmap", cbs(&d, "split", 0), None),
        step("combine_count", vec![], None),
    ];
    let batches = vec![vec![s("a,b,c")], vec![], vec![s("d")]];
    let (recs, _) = run_all(describe_split, steps, batches);
    assert_eq!(recs, vec![Value::from(3), Value::from(1)]);
}

#[test]
fn a_combiner_must_be_last() {
    let d = rt::describe(describe_split).unwrap();
    let steps = vec![
        step("combine_count", vec![], None),
        step("flatmap", cbs(&d, "split", 0), None),
    ];
    let e = rt::open_run(describe_split, steps).unwrap_err();
    assert!(e.contains("a combiner must be the last step"), "{e}");
}

fn describe_views(g: &mut Guest) {
    g.job(
        "views",
        GearsBuilder::new("KeysReader")
            .filter_view(|r: View<'_>| {
                let key = r.get("key").and_then(|k| k.as_str());
                note(format!("filter {key:?}"));
                match key {
                    Some("bad") => Err(Error::msg("bad record")),
                    Some(k) => Ok(k != "all_keys"),
                    None => Err(Error::msg("no key")),
                }
            })
            .foreach_view(|r: View<'_>| {
                let value = r.get("value").and_then(|v| v.as_str()).unwrap_or("-");
                note(format!("foreach {value}"));
                Ok(())
            })
            .map_view(|r: View<'_>| {
                // a typed record, decoded because the step asks
                let typed: OnlyKey = r.decode()?;
                Ok(format!(
                    "{}={}",
                    typed.key,
                    r.get("value").and_then(|v| v.as_str()).unwrap_or("")
                ))
            })
            .run(Run::new()),
    );
}

fn key_record(k: &str, v: &str) -> Value {
    Value::Map(vec![
        (s("key"), s(k)),
        (s("value"), s(v)),
        (s("type"), s("string")),
        (s("event"), Value::Nil),
    ])
}

#[test]
fn view_steps_read_records_in_place_first_and_later() {
    let d = rt::describe(describe_views).unwrap();
    let steps = vec![
        step("filter", cbs(&d, "views", 0), None),
        step("foreach", cbs(&d, "views", 1), None),
        step("map", cbs(&d, "views", 2), None),
    ];
    let batch = vec![
        key_record("x", "1"),
        key_record("all_keys", "2"),
        key_record("bad", "3"),
        Value::from(5),
        key_record("y", "4"),
    ];
    let (recs, errs) = run_all(describe_views, steps, vec![batch]);
    assert_eq!(recs, vec![s("x=1"), s("y=4")]);
    assert_eq!(errs, vec!["bad record".to_string(), "no key".to_string()]);
    assert_eq!(
        take_log(),
        [
            "filter Some(\"x\")",
            "foreach 1",
            "filter Some(\"all_keys\")",
            "filter Some(\"bad\")",
            "filter None",
            "filter Some(\"y\")",
            "foreach 4",
        ]
    );
}

#[test]
fn a_view_step_after_a_typed_one_and_a_view_that_passes_records_on() {
    let d = rt::describe(describe_views).unwrap();
    // The map_view alone (the first step reads in place) and after the foreach_view.
    let (recs, errs) = run_all(
        describe_views,
        vec![step("map", cbs(&d, "views", 2), None)],
        vec![vec![key_record("k", "v"), Value::from(1)]],
    );
    assert_eq!(recs, vec![s("k=v")]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("cannot decode the record as"),
        "{}",
        errs[0]
    );
    let (recs, errs) = run_all(
        describe_views,
        vec![
            step("foreach", cbs(&d, "views", 1), None),
            step("map", cbs(&d, "views", 2), None),
        ],
        vec![vec![key_record("k", "v")]],
    );
    assert_eq!(recs, vec![s("k=v")]);
    assert!(errs.is_empty());
    // A view step that passes records on gives them whole to what follows.
    let (recs, _) = run_all(
        describe_views,
        vec![step("foreach", cbs(&d, "views", 1), None)],
        vec![vec![key_record("k", "v"), Value::from(1)]],
    );
    assert_eq!(recs, vec![key_record("k", "v"), Value::from(1)]);
    take_log();
}

#[test]
fn a_view_step_needs_an_array_of_records() {
    let d = rt::describe(describe_views).unwrap();
    let h = rt::open_run(describe_views, vec![step("map", cbs(&d, "views", 2), None)]).unwrap();
    let e = rt::push(h, crate::builder::encode(&s("x"))).unwrap_err();
    assert!(e.contains("not a MessagePack array"), "{e}");
    rt::close(h);
}
