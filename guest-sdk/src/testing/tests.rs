//! Tests of gears::testing: the fake host, the keyspace, and runs of every step kind
//! against what the module gives.

use rmpv::Value;

use super::{
    describe, run_job, run_job_over_keyspace, run_registration, with_host, Keyspace, Reply,
    TestHost,
};
use crate::{
    execute, execute_as, Error, GearsBuilder, Guest, KeyRecord, Level, Mode, Register, Run, View,
};

fn s(v: &str) -> Value {
    Value::from(v)
}

fn i(n: i64) -> Value {
    Value::from(n)
}

fn kv(k: Value, v: Value) -> Value {
    Value::Map(vec![(s("key"), k), (s("value"), v)])
}

fn strs(v: &[&str]) -> Vec<Value> {
    v.iter().map(|x| s(x)).collect()
}

fn ints(v: &[i64]) -> Vec<Value> {
    v.iter().map(|x| i(*x)).collect()
}

/// Runs job `name` of `f` over `records` with no host; panics on a run error.
fn job(f: fn(&mut Guest), name: &str, records: Vec<Value>) -> (Vec<Value>, Vec<String>) {
    match run_job(f, name, records, &[]) {
        Ok(out) => out,
        Err(e) => panic!("job {name}: {e}"),
    }
}

#[test]
fn host_calls_without_a_host_are_errors_not_aborts() {
    let e = execute(["get", "k"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "execute() called outside a host: use gears::testing to give it one"
    );
    assert!(execute_as::<i64>(["incr", "n"]).is_err());
    assert!(crate::call_next(["k"])
        .unwrap_err()
        .to_string()
        .contains("call_next() called outside a host"));
    assert!(crate::override_reply("+OK").is_err());
    crate::log("to stderr");
    assert!(crate::try_log("notice", "to stderr").is_ok());
    assert!(crate::try_log("loud", "x").is_err());
    assert_eq!(crate::config_get("x"), None);
    assert_eq!(crate::shard_id(), super::SHARD_ID);
    assert_eq!(crate::hashtag(), super::HASHTAG);
    assert_eq!(crate::atomic(|| Ok(1)), Ok(1));
}

fn genres(g: &mut Guest) {
    g.job(
        "count",
        GearsBuilder::new("KeysOnlyReader")
            .map_view(|key: View<'_>| {
                execute_as::<Option<String>>(["hget", key.as_str().unwrap_or_default(), "genres"])
            })
            .filter(|g: Option<String>| Ok(g.is_some()))
            .flatmap(|g: Option<String>| {
                Ok(g.unwrap_or_default()
                    .split(',')
                    .map(String::from)
                    .collect::<Vec<_>>())
            })
            .countby_record()
            .run(Run::new().pattern("movie:*")),
    );
}

#[test]
fn the_genres_recipe_counts_genres_from_the_keyspace() {
    let host = TestHost::new();
    host.command(["hset", "movie:1", "genres", "Drama,Comedy", "year", "1999"])
        .unwrap();
    host.command(["hset", "movie:2", "genres", "Drama"])
        .unwrap();
    host.command(["hset", "movie:3", "title", "no genres"])
        .unwrap();
    host.keyspace()
        .hset("movie:4", "genres", "Comedy,Drama,War");
    host.keyspace().set("user:1", "not a movie");
    let keys = strs(&["movie:1", "movie:2", "movie:3", "movie:4"]);
    let (results, errors) = with_host(&host, || run_job(genres, "count", keys, &[])).unwrap();
    assert_eq!(
        results,
        vec![
            kv(s("Drama"), i(3)),
            kv(s("Comedy"), i(2)),
            kv(s("War"), i(1))
        ]
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(host.commands().len(), 4);
    // The KeysOnlyReader's own records: the keys matching movie:*.
    let (again, _) = with_host(&host, || {
        run_job_over_keyspace(genres, "count", &["movie:*"])
    })
    .unwrap();
    assert_eq!(again, results);
}

#[test]
fn a_failing_record_is_dropped_and_reported_the_others_go_on() {
    fn f(g: &mut Guest) {
        g.job(
            "lengths",
            GearsBuilder::new("KeysOnlyReader")
                .map(|k: String| execute_as::<i64>(["strlen", k.as_str()]))
                .filter(|n: i64| {
                    if n == 3 {
                        Err(Error::msg("three"))
                    } else {
                        Ok(true)
                    }
                })
                .run(Run::new()),
        );
    }
    let host = TestHost::new();
    host.keyspace()
        .set("a", "x")
        .set("b", "xyz")
        .sadd("c", "m")
        .set("d", "xy");
    let records = vec![s("a"), s("b"), s("c"), i(7), s("d")];
    let (results, errors) = with_host(&host, || run_job(f, "lengths", records, &[])).unwrap();
    assert_eq!(results, ints(&[1, 2]));
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0], "three");
    assert_eq!(
        errors[1],
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert!(errors[2].contains("record"), "{}", errors[2]);
}

fn all_keys(g: &mut Guest) {
    g.registration(
        GearsBuilder::new("KeysReader")
            .filter(|r: KeyRecord| Ok(r.key != "all_keys"))
            .foreach(|r: KeyRecord| {
                execute(["sadd", "all_keys", r.key.as_str()])?;
                Ok(())
            })
            .register(Register::new().mode(Mode::Sync).desc("all keys")),
    );
}

#[test]
fn a_registration_updates_the_fake_keyspace() {
    let host = TestHost::new();
    host.keyspace().set("k1", "v").hset("k2", "f", "v");
    for key in ["k1", "k2", "k1"] {
        let event = host.keyspace().key_record(key, Some("set")).unwrap();
        let (out, errors) =
            with_host(&host, || run_registration(all_keys, 0, vec![event.clone()])).unwrap();
        assert_eq!(out, vec![event]);
        assert!(errors.is_empty());
    }
    let event = host
        .keyspace()
        .key_record("all_keys", Some("sadd"))
        .unwrap();
    let (out, _) = with_host(&host, || {
        run_registration(all_keys, "all keys", vec![event])
    })
    .unwrap();
    assert!(out.is_empty());
    assert_eq!(
        host.keyspace().members("all_keys"),
        vec![b"k1".to_vec(), b"k2".to_vec()]
    );
    assert!(run_registration(all_keys, 1, vec![]).is_err());
    assert!(run_registration(all_keys, "nope", vec![]).is_err());
}

#[test]
fn logs_config_and_shard_are_the_hosts() {
    fn f(g: &mut Guest) {
        g.job(
            "log",
            GearsBuilder::new("ShardsIDReader")
                .foreach(|id: String| {
                    crate::log(format!("shard {id}"));
                    crate::log_at(Level::Warning, crate::hashtag());
                    let level = crate::config_get("level").unwrap_or_default();
                    crate::try_log(&level, "configured")?;
                    Ok(())
                })
                .run(Run::new()),
        );
    }
    let host = TestHost::new();
    host.set_shard_id("ab".repeat(20)).set_hashtag("t1");
    host.set_config("level", "debug");
    let (out, errors) = with_host(&host, || run_job_over_keyspace(f, "log", &[])).unwrap();
    assert_eq!(out, vec![Value::from("ab".repeat(20))]);
    assert!(errors.is_empty());
    assert_eq!(
        host.logs(),
        vec![
            (Level::Notice, format!("shard {}", "ab".repeat(20))),
            (Level::Warning, "t1".to_string()),
            (Level::Debug, "configured".to_string()),
        ]
    );
    host.set_config("level", "loud");
    let (_, errors) = with_host(&host, || run_job_over_keyspace(f, "log", &[])).unwrap();
    assert_eq!(
        errors,
        ["Log level should be one of the following : debug,verbose,notice,warning"]
    );
}

#[test]
fn describe_returns_the_plans_or_the_builders_errors() {
    let d = describe(genres).unwrap();
    let job = &d.jobs[0];
    assert_eq!(
        (job.name.as_str(), job.reader.as_str()),
        ("count", "KeysOnlyReader")
    );
    assert_eq!(
        job.ops(),
        ["map", "filter", "flatmap", "countby", "collect"]
    );
    assert_eq!(job.reader_arg("pattern"), Some(&s("movie:*")));
    assert_eq!(job.mode, "async");
    let d = describe(all_keys).unwrap();
    assert_eq!(d.registrations[0].mode, "sync");
    assert_eq!(d.registrations[0].desc.as_deref(), Some("all keys"));

    fn bad(g: &mut Guest) {
        g.job(
            "a",
            GearsBuilder::new("KeysReader").run(Run::new().key("x")),
        );
        g.job("a", GearsBuilder::new("TimeReader").run(Run::new()));
    }
    let e = describe(bad).unwrap_err().to_string();
    assert!(e.starts_with("describe: "), "{e}");
    assert!(e.contains("run() of KeysReader does not take key"), "{e}");
    assert!(e.contains("two jobs are called 'a'"), "{e}");
    assert!(e.contains("TimeReader does not support run()"), "{e}");
    assert!(run_job(bad, "a", vec![], &[]).is_err());
    assert!(run_job(genres, "nope", vec![], &[])
        .unwrap_err()
        .to_string()
        .contains("no job 'nope'"));
}

#[test]
fn commands_fail_while_the_guest_is_described() {
    fn f(g: &mut Guest) {
        let n = execute(["get", "k"]).map(|_| 1).unwrap_or(0);
        g.job(
            format!("n{n}"),
            GearsBuilder::new("ShardsIDReader").run(Run::new()),
        );
    }
    let host = TestHost::new();
    let d = with_host(&host, || describe(f)).unwrap();
    assert_eq!(d.jobs[0].name, "n0");
}

// -- every fused step kind --

fn fused_steps(g: &mut Guest) {
    let words = || GearsBuilder::new("KeysOnlyReader");
    g.job(
        "map",
        words()
            .map(|w: String| Ok(w.to_uppercase()))
            .run(Run::new()),
    );
    g.job(
        "map_view",
        words()
            .map_view(|w: View<'_>| Ok(w.as_str().map(str::len)))
            .run(Run::new()),
    );
    g.job(
        "flatmap",
        words()
            .flatmap(|w: String| Ok(w.chars().map(String::from).collect::<Vec<_>>()))
            .run(Run::new()),
    );
    g.job(
        "filter",
        words()
            .filter(|w: String| Ok(w.starts_with('a')))
            .run(Run::new()),
    );
    g.job(
        "filter_view",
        words()
            .filter_view(|w: View<'_>| Ok(w.as_str().is_some_and(|w| w.len() > 1)))
            .run(Run::new()),
    );
    g.job(
        "foreach",
        words()
            .foreach(|w: String| {
                execute(["rpush", "seen", w.as_str()])?;
                Ok(())
            })
            .run(Run::new()),
    );
    g.job(
        "foreach_view",
        words()
            .foreach_view(|w: View<'_>| {
                execute(["incr", w.as_str().unwrap_or_default()])?;
                Ok(())
            })
            .run(Run::new()),
    );
    g.job(
        "accumulate",
        words()
            .accumulate(|a: Option<Vec<String>>, w: String| {
                let mut a = a.unwrap_or_default();
                a.push(w);
                Ok(a)
            })
            .run(Run::new()),
    );
    g.job(
        "localgroupby",
        words()
            .localgroupby(
                |w: String| Ok(w.len()),
                |_n: usize, a: Option<String>, w: String| Ok(a.unwrap_or_default() + &w),
            )
            .run(Run::new()),
    );
    g.job(
        "groupby",
        words()
            .groupby(
                |w: String| Ok(w.chars().next().unwrap_or('-').to_string()),
                |_k: String, a: Option<i64>, _w: String| Ok(a.unwrap_or(0) + 1),
            )
            .run(Run::new()),
    );
    g.job(
        "batchgroupby",
        words()
            .batchgroupby(
                |w: String| Ok(w.len()),
                |_n: usize, ws: Vec<String>| Ok(ws.join("+")),
            )
            .run(Run::new()),
    );
    g.job(
        "aggregate",
        words()
            .aggregate(
                0i64,
                |a: i64, w: String| Ok(a + w.len() as i64),
                |a: i64, b: i64| Ok(a * 100 + b),
            )
            .run(Run::new()),
    );
    g.job(
        "aggregateby",
        words()
            .aggregateby(
                |w: String| Ok(w.len()),
                String::from(">"),
                |_n: usize, a: String, w: String| Ok(a + &w),
                |_n: usize, a: String, b: String| Ok(a + &b),
            )
            .run(Run::new()),
    );
    g.job(
        "countby",
        words().countby(|w: String| Ok(w.len())).run(Run::new()),
    );
    g.job(
        "map_count",
        words().map(|w: String| Ok(w)).count().run(Run::new()),
    );
    g.job(
        "repartition",
        words()
            .repartition(|w: String| Ok(w))
            .map(|w: String| Ok(w + "!"))
            .collect()
            .run(Run::new().collect(false)),
    );
}

#[test]
fn every_fused_step_kind_gives_what_the_module_gives() {
    let host = TestHost::new();
    let words = || strs(&["ab", "b", "abc", "c", "ab"]);
    let run = |name: &str| with_host(&host, || job(fused_steps, name, words()));
    assert_eq!(run("map").0, strs(&["AB", "B", "ABC", "C", "AB"]));
    assert_eq!(run("map_view").0, ints(&[2, 1, 3, 1, 2]));
    assert_eq!(
        run("flatmap").0,
        strs(&["a", "b", "b", "a", "b", "c", "c", "a", "b"])
    );
    assert_eq!(run("filter").0, strs(&["ab", "abc", "ab"]));
    assert_eq!(run("filter_view").0, strs(&["ab", "abc", "ab"]));
    assert_eq!(run("foreach").0, words());
    assert_eq!(
        host.keyspace().members("seen"),
        ["ab", "b", "abc", "c", "ab"].map(|w| w.as_bytes().to_vec())
    );
    assert_eq!(run("foreach_view").0, words());
    assert_eq!(host.keyspace().get("ab"), Some(&b"2"[..]));
    assert_eq!(run("accumulate").0, vec![Value::Array(words())]);
    assert_eq!(
        run("localgroupby").0,
        vec![kv(i(2), s("abab")), kv(i(1), s("bc")), kv(i(3), s("abc"))]
    );
    assert_eq!(
        run("groupby").0,
        vec![kv(s("a"), i(3)), kv(s("b"), i(1)), kv(s("c"), i(1))]
    );
    assert_eq!(
        run("batchgroupby").0,
        vec![kv(i(2), s("ab+ab")), kv(i(1), s("b+c")), kv(i(3), s("abc"))]
    );
    // seq folds the shard's records from 0 (9), comb folds the shard's result from 0.
    assert_eq!(run("aggregate").0, ints(&[9]));
    // Each phase starts from a copy of the zero.
    assert_eq!(
        run("aggregateby").0,
        vec![
            kv(i(2), s(">>abab")),
            kv(i(1), s(">>bc")),
            kv(i(3), s(">>abc"))
        ]
    );
    assert_eq!(
        run("countby").0,
        vec![kv(i(2), i(2)), kv(i(1), i(2)), kv(i(3), i(1))]
    );
    assert_eq!(run("map_count").0, ints(&[5]));
    assert_eq!(
        run("repartition").0,
        strs(&["ab!", "b!", "abc!", "c!", "ab!"])
    );
    // Nothing in: count is 0, the rest outputs nothing.
    assert_eq!(
        with_host(&host, || job(fused_steps, "map_count", vec![])).0,
        ints(&[0])
    );
    assert!(with_host(&host, || job(fused_steps, "aggregate", vec![]))
        .0
        .is_empty());
}

// -- every native step kind --

fn native_steps(g: &mut Guest) {
    let r = || GearsBuilder::new("KeysOnlyReader");
    g.job("count", r().count().run(Run::new()));
    g.job("countby_record", r().countby_record().run(Run::new()));
    g.job(
        "map_countby_record",
        r().map(|v: Value| Ok(v)).countby_record().run(Run::new()),
    );
    g.job("distinct", r().distinct().run(Run::new()));
    g.job("avg_record", r().avg_record().run(Run::new()));
    g.job(
        "avg",
        r().avg(|v: Value| Ok(v.as_f64().unwrap_or(0.0) * 2.0))
            .run(Run::new()),
    );
    g.job("sort", r().sort(false).run(Run::new()));
    g.job("sort_reverse", r().sort(true).run(Run::new()));
    g.job("limit", r().limit(2, 1).run(Run::new()));
    g.job("sort_limit", r().sort(false).limit(2, 0).run(Run::new()));
    g.job("collect", r().collect().run(Run::new().collect(false)));
}

#[test]
fn every_native_step_kind_gives_what_the_module_gives() {
    let mixed = || {
        vec![
            s("b"),
            i(2),
            Value::F64(2.0),
            s("a"),
            Value::Boolean(true),
            i(1),
            s("b"),
        ]
    };
    let run = |name: &str, records: Vec<Value>| job(native_steps, name, records);
    assert_eq!(run("count", mixed()).0, ints(&[7]));
    assert_eq!(run("count", vec![]).0, ints(&[0]));
    // 2 and 2.0 are one key, true and 1 another, as in the module (and Python).
    let counts = vec![
        kv(s("b"), i(2)),
        kv(i(2), i(2)),
        kv(s("a"), i(1)),
        kv(Value::Boolean(true), i(2)),
    ];
    assert_eq!(run("countby_record", mixed()).0, counts);
    // The same through the guest's combiner.
    assert_eq!(run("map_countby_record", mixed()).0, counts);
    assert_eq!(
        run("distinct", mixed()).0,
        vec![s("b"), i(2), s("a"), Value::Boolean(true)]
    );
    let (avg, errors) = run("avg_record", vec![i(1), s(" 2 "), Value::F64(6.0), s("x")]);
    assert_eq!(avg, vec![Value::F64(3.0)]);
    assert_eq!(errors, ["avg: not a number: 'x'"]);
    assert_eq!(run("avg", ints(&[1, 2])).0, vec![Value::F64(3.0)]);
    assert!(run("avg", vec![]).0.is_empty());
    assert_eq!(
        run("sort", mixed()).0,
        vec![
            Value::Boolean(true),
            i(1),
            i(2),
            Value::F64(2.0),
            s("a"),
            s("b"),
            s("b")
        ]
    );
    assert_eq!(run("sort_reverse", ints(&[2, 9, 1])).0, ints(&[9, 2, 1]));
    assert_eq!(run("limit", ints(&[1, 2, 3, 4])).0, ints(&[2, 3]));
    assert_eq!(run("sort_limit", ints(&[3, 1, 2])).0, ints(&[1, 2]));
    assert_eq!(run("collect", ints(&[3, 1])).0, ints(&[3, 1]));
}

#[test]
fn a_generator_job_makes_its_records_from_the_arguments() {
    fn f(g: &mut Guest) {
        g.job(
            "echo",
            GearsBuilder::generator(|args: Vec<String>| {
                if args.is_empty() {
                    return Err(Error::msg("no arguments"));
                }
                Ok(args)
            })
            .map(|a: String| Ok(a.len()))
            .run(Run::new()),
        );
    }
    assert_eq!(
        run_job(f, "echo", vec![], &["a", "bb"]).unwrap().0,
        ints(&[1, 2])
    );
    assert_eq!(
        run_job(f, "echo", vec![], &[]).unwrap_err().to_string(),
        "no arguments"
    );
    assert!(run_job(f, "echo", vec![i(1)], &["a"]).is_err());
}

#[test]
fn a_keys_reader_job_reads_records_from_the_keyspace() {
    fn f(g: &mut Guest) {
        g.job(
            "types",
            GearsBuilder::new("KeysReader")
                .map(|r: KeyRecord| Ok((r.key, r.kind, r.value)))
                .run(Run::new().pattern("k*")),
        );
        g.job(
            "names",
            GearsBuilder::new("KeysReader").run(Run::new().read_value(false)),
        );
        g.job(
            "one",
            GearsBuilder::new("KeysReader").run(Run::new().pattern("gone").no_scan(true)),
        );
    }
    let host = TestHost::new();
    host.keyspace()
        .set("k1", "v")
        .hset("k2", "f", "1")
        .rpush("k3", "a")
        .sadd("k4", "m")
        .set("other", "x");
    let (out, _) = with_host(&host, || run_job_over_keyspace(f, "types", &[])).unwrap();
    let row = |k: &str, t: &str, v: Value| Value::Array(vec![s(k), s(t), v]);
    assert_eq!(
        out,
        vec![
            row("k1", "string", s("v")),
            row("k2", "hash", Value::Map(vec![(s("f"), s("1"))])),
            row("k3", "list", Value::Array(vec![s("a")])),
            row("k4", "set", Value::Nil),
        ]
    );
    let (out, _) = with_host(&host, || run_job_over_keyspace(f, "names", &["o*"])).unwrap();
    assert_eq!(
        out,
        vec![Value::Map(vec![
            (s("key"), s("other")),
            (s("event"), Value::Nil)
        ])]
    );
    let (out, _) = with_host(&host, || run_job_over_keyspace(f, "one", &[])).unwrap();
    assert_eq!(out[0]["type"], s("empty"));
    assert!(run_job_over_keyspace(f, "one", &[]).is_err()); // no host installed
}

#[test]
fn hooks_call_next_and_override_the_reply() {
    fn f(g: &mut Guest) {
        g.registration(
            GearsBuilder::new("CommandReader")
                .map(|cmd: Vec<String>| {
                    let mut args = cmd[1..].to_vec();
                    args.extend(["hooked".to_string(), "1".to_string()]);
                    let n = crate::call_next(&args)?;
                    crate::override_reply(format!("+{n}"))?;
                    Ok(n)
                })
                .register(Register::new().hook("hset")),
        );
    }
    let host = TestHost::new();
    host.hook("hset");
    let record = strs(&["hset", "h", "a", "1"]);
    let (out, errors) =
        with_host(&host, || run_registration(f, 0, vec![Value::Array(record)])).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out, ints(&[2]));
    assert_eq!(host.overridden_replies(), [s("+2")]);
    assert_eq!(
        host.keyspace().members("h"),
        [b"a".to_vec(), b"hooked".to_vec()]
    );
}

#[test]
fn handlers_answer_first_and_replies_keep_their_types() {
    let host = TestHost::new();
    host.on_command(|args| match args[0].to_ascii_lowercase().as_slice() {
        b"zscore" => Some(Reply::Double(1.5)),
        b"hgetall" if args[1] == b"broken" => Some(Reply::error("ERR broken")),
        _ => None,
    });
    host.keyspace()
        .hset("h", "f", "v")
        .rpush("l", "a")
        .rpush("l", vec![0xffu8]);
    with_host(&host, || {
        assert_eq!(execute(["zscore", "z", "m"]).unwrap(), Value::F64(1.5));
        assert_eq!(
            execute(["hgetall", "broken"]).unwrap_err().to_string(),
            "ERR broken"
        );
        assert_eq!(
            execute(["hgetall", "h"]).unwrap(),
            Value::Array(strs(&["f", "v"]))
        );
        assert_eq!(
            execute(["lrange", "l", "0", "-1"]).unwrap(),
            Value::Array(vec![s("a"), Value::Binary(vec![0xff])])
        );
        assert_eq!(execute(["set", "k", "v"]).unwrap(), s("OK"));
        assert_eq!(execute(["get", "nope"]).unwrap(), Value::Nil);
        assert_eq!(
            execute_as::<Vec<Option<String>>>(["hmget", "h", "f", "g"]).unwrap(),
            vec![Some("v".to_string()), None]
        );
        assert_eq!(
            execute(["frob"]).unwrap_err().to_string(),
            "ERR unknown command 'frob'"
        );
        assert_eq!(
            execute(Vec::<&str>::new()).unwrap_err().to_string(),
            "execute() needs a command name"
        );
        // The test holding the keyspace makes the guest's command fail, not panic.
        let _held = host.keyspace();
        assert!(execute(["get", "k"])
            .unwrap_err()
            .to_string()
            .contains("borrowed"));
    });
}

#[test]
fn the_keyspace_answers_as_redis() {
    let mut ks = Keyspace::new();
    let mut c = |args: &[&str]| ks.command(args);
    let bulk = |v: &str| Reply::from(v);
    let arr = |v: &[&str]| Reply::Array(v.iter().map(|x| Reply::from(*x)).collect());
    let wrongtype =
        Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value");
    // strings
    assert_eq!(c(&["SET", "s", "1"]), Reply::ok());
    assert_eq!(c(&["set", "s", "2", "NX"]), Reply::Nil);
    assert_eq!(c(&["set", "t", "2", "XX"]), Reply::Nil);
    assert_eq!(c(&["set", "s", "5", "XX", "EX", "10"]), Reply::ok());
    assert_eq!(
        c(&["set", "s", "5", "PX", "0"]),
        Reply::error("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        c(&["set", "s", "5", "EX"]),
        Reply::error("ERR syntax error")
    );
    assert_eq!(c(&["set", "s", "6", "GET"]), bulk("5"));
    assert_eq!(c(&["incr", "s"]), Reply::Int(7));
    assert_eq!(c(&["incrby", "s", "-10"]), Reply::Int(-3));
    assert_eq!(c(&["decr", "s"]), Reply::Int(-4));
    assert_eq!(c(&["append", "s", "x"]), Reply::Int(3));
    assert_eq!(
        c(&["incr", "s"]),
        Reply::error("ERR value is not an integer or out of range")
    );
    assert_eq!(c(&["strlen", "s"]), Reply::Int(3));
    assert_eq!(c(&["get", "s"]), bulk("-4x"));
    assert_eq!(c(&["exists", "s", "s", "nope"]), Reply::Int(2));
    assert_eq!(
        c(&["get"]),
        Reply::error("ERR wrong number of arguments for 'get' command")
    );
    // hashes
    assert_eq!(c(&["hset", "h", "a", "1", "b", "2"]), Reply::Int(2));
    assert_eq!(c(&["hset", "h", "a", "3"]), Reply::Int(0));
    assert_eq!(
        c(&["hset", "h", "a"]),
        Reply::error("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(c(&["hget", "h", "a"]), bulk("3"));
    assert_eq!(
        c(&["hmget", "h", "a", "z"]),
        Reply::Array(vec![bulk("3"), Reply::Nil])
    );
    assert_eq!(c(&["hgetall", "h"]), arr(&["a", "3", "b", "2"]));
    assert_eq!(c(&["hincrby", "h", "a", "4"]), Reply::Int(7));
    assert_eq!(c(&["hincrby", "h", "n", "4"]), Reply::Int(4));
    assert_eq!(c(&["hexists", "h", "n"]), Reply::Int(1));
    assert_eq!(c(&["hdel", "h", "n", "z"]), Reply::Int(1));
    assert_eq!(c(&["hlen", "h"]), Reply::Int(2));
    assert_eq!(c(&["hget", "s", "a"]), wrongtype);
    assert_eq!(c(&["get", "h"]), wrongtype);
    assert_eq!(c(&["hdel", "h", "a", "b"]), Reply::Int(2));
    assert_eq!(c(&["exists", "h"]), Reply::Int(0));
    // sets
    assert_eq!(c(&["sadd", "S", "x", "y", "x"]), Reply::Int(2));
    assert_eq!(c(&["sismember", "S", "x"]), Reply::Int(1));
    assert_eq!(c(&["srem", "S", "x", "q"]), Reply::Int(1));
    assert_eq!(c(&["smembers", "S"]), arr(&["y"]));
    assert_eq!(c(&["scard", "S"]), Reply::Int(1));
    assert_eq!(c(&["sadd", "s", "x"]), wrongtype);
    // lists
    assert_eq!(c(&["rpush", "l", "a", "b"]), Reply::Int(2));
    assert_eq!(c(&["lpush", "l", "z"]), Reply::Int(3));
    assert_eq!(c(&["lrange", "l", "0", "-1"]), arr(&["z", "a", "b"]));
    assert_eq!(c(&["lrange", "l", "-2", "100"]), arr(&["a", "b"]));
    assert_eq!(c(&["lpop", "l"]), bulk("z"));
    assert_eq!(c(&["rpop", "l", "5"]), arr(&["b", "a"]));
    assert_eq!(c(&["llen", "l"]), Reply::Int(0));
    assert_eq!(c(&["lpop", "l"]), Reply::Nil);
    // keys, types, expire, streams
    assert_eq!(c(&["keys", "*"]), arr(&["S", "s"]));
    assert_eq!(c(&["type", "S"]), Reply::Status("set".into()));
    assert_eq!(c(&["type", "nope"]), Reply::Status("none".into()));
    assert_eq!(c(&["expire", "s", "10"]), Reply::Int(1));
    assert_eq!(c(&["expire", "nope", "10"]), Reply::Int(0));
    assert_eq!(c(&["xadd", "x", "1-1", "f", "v"]), bulk("1-1"));
    assert_eq!(c(&["xadd", "x", "1-*", "f", "v"]), bulk("1-2"));
    assert_eq!(
        c(&["xadd", "x", "1-0", "f", "v"]),
        Reply::error(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item"
        )
    );
    assert!(matches!(c(&["xadd", "x", "*", "f", "v"]), Reply::Bulk(_)));
    assert!(c(&["xadd", "x", "MAXLEN", "2", "*", "f", "v"])
        .to_value()
        .is_str());
    assert_eq!(c(&["xlen", "x"]), Reply::Int(2));
    assert_eq!(c(&["xadd", "y", "NOMKSTREAM", "*", "f", "v"]), Reply::Nil);
    assert_eq!(c(&["type", "x"]), Reply::Status("stream".into()));
    assert_eq!(c(&["del", "x", "y", "s"]), Reply::Int(2));
    assert_eq!(
        c(&["nope", "x"]),
        Reply::error("ERR unknown command 'nope'")
    );
}

#[test]
fn a_value_the_host_cannot_decode_fails_the_run() {
    fn f(g: &mut Guest) {
        g.job(
            "ext",
            GearsBuilder::new("KeysOnlyReader")
                .map(|_k: String| Ok(Value::Ext(9, vec![1])))
                .run(Run::new()),
        );
    }
    let e = run_job(f, "ext", vec![s("k")], &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "the guest returned a bad batch: unknown MessagePack ext type 9"
    );
}

#[test]
fn a_stream_registration_runs_over_the_streams_records() {
    fn f(g: &mut Guest) {
        g.registration(
            GearsBuilder::new("StreamReader")
                .foreach(|m: crate::StreamRecord| {
                    let mut cmd = vec!["hset".to_string(), format!("msg:{}", m.id)];
                    for (f, v) in m.value {
                        cmd.extend([f, v]);
                    }
                    execute(&cmd)?;
                    Ok(())
                })
                .register(Register::new().prefix("events")),
        );
    }
    let host = TestHost::new();
    host.command(["xadd", "events", "1-0", "user", "ann", "n", "1"])
        .unwrap();
    host.command(["xadd", "events", "2-0", "user", "bob"])
        .unwrap();
    let records = host.keyspace().stream_records("events");
    let (out, errors) = with_host(&host, || run_registration(f, 0, records)).unwrap();
    assert_eq!((out.len(), errors.len()), (2, 0));
    assert_eq!(host.command(["hget", "msg:1-0", "n"]).unwrap(), s("1"));
    assert_eq!(host.command(["hget", "msg:2-0", "user"]).unwrap(), s("bob"));
    assert!(host.keyspace().stream_records("nope").is_empty());
}
