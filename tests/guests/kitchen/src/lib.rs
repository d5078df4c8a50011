//! kitchen.wasm: every reader, operation and host function of the guest SDK, for the
//! black-box tests. Jobs run as `RG.WASMRUN kitchen <job> [pattern or key or args...]`;
//! the registrations are bound at upload.

use std::collections::BTreeMap;

use gears::{
    atomic, call_next, config_get, execute, execute_as, hashtag, log, override_reply, shard_id,
    try_log, Error, GearsBuilder, Guest, KeyRecord, Mode, Register, Run, StreamRecord, TimeRecord,
    Value, View,
};
use serde::Serialize;

/// One record of each kind the encoding has (job `values`).
#[derive(Serialize)]
#[serde(untagged)]
enum Kind {
    Nil(()),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    List((i64, String)),
    Map(BTreeMap<String, i64>),
    Bool(bool),
}

fn kind(r: KeyRecord) -> gears::Result<String> {
    Ok(r.kind.unwrap_or_default())
}

fn one_record() -> GearsBuilder {
    GearsBuilder::generator(|_args: Vec<String>| Ok([0]))
}

fn jobs(g: &mut Guest) {
    let keys = || GearsBuilder::new("KeysReader");
    let names = || GearsBuilder::new("KeysOnlyReader");

    // readers
    g.job("keys", keys().run(Run::new()));
    g.job("keys_novalue", keys().run(Run::new().read_value(false)));
    g.job("keys_only", names().run(Run::new()));
    g.job("stream", GearsBuilder::new("StreamReader").run(Run::new()));
    g.job(
        "shards",
        GearsBuilder::new("ShardsIDReader").run(Run::new()),
    );
    g.job(
        "gen",
        GearsBuilder::generator(|args: Vec<String>| {
            let n = args.len();
            let mut records: Vec<Value> = args.into_iter().map(Value::from).collect();
            records.push(Value::from(n));
            Ok(records)
        })
        .run(Run::new()),
    );

    // native operations
    g.job("count", names().count().run(Run::new()));
    // bench/entry_cost.py: the cost of entering the guest is map_count minus count
    g.job(
        "map_count",
        names().map(|k: String| Ok(k)).count().run(Run::new()),
    );
    // ... and of a step that reads each record in place (a View) and keeps its length
    g.job(
        "len_count",
        names()
            .map_view(|k: View<'_>| Ok(k.as_str().map(str::len)))
            .count()
            .run(Run::new()),
    );
    // the View steps over whole keyspace records: the same answers as typed steps
    g.job(
        "views",
        keys()
            .filter_view(|r: View<'_>| Ok(r.get("type").and_then(|t| t.as_str()) == Some("hash")))
            .foreach_view(|r: View<'_>| {
                let key = r.get("key").and_then(|k| k.as_str()).unwrap_or_default();
                execute(["sadd", "views:seen", key])?;
                Ok(())
            })
            .map_view(|r: View<'_>| {
                let typed: KeyRecord = r.decode()?;
                let fields = r.get("value").map(|v| v.entries().len()).unwrap_or(0);
                Ok((typed.key, fields))
            })
            .run(Run::new()),
    );
    g.job("countby_type", keys().countby(kind).run(Run::new()));
    g.job(
        "distinct_types",
        keys().map(kind).distinct().run(Run::new()),
    );
    g.job("sort_keys", names().sort(false).run(Run::new()));
    g.job("sort_keys_desc", names().sort(true).run(Run::new()));
    g.job("limit", names().sort(false).limit(2, 1).run(Run::new()));
    g.job(
        "avg_len",
        names().avg(|k: String| Ok(k.len() as f64)).run(Run::new()),
    );

    // stateful operations
    g.job(
        "accumulate_len",
        names()
            .accumulate(|a: Option<i64>, k: String| Ok(a.unwrap_or(0) + k.len() as i64))
            .run(Run::new()),
    );
    g.job(
        "aggregate_len",
        names()
            .aggregate(
                0i64,
                |a: i64, k: String| Ok(a + k.len() as i64),
                |a: i64, b: i64| Ok(a + b),
            )
            .run(Run::new()),
    );
    g.job(
        "aggregateby_type",
        keys()
            .aggregateby(
                kind,
                0i64,
                |_t: String, a: i64, _r: KeyRecord| Ok(a + 1),
                |_t: String, a: i64, b: i64| Ok(a + b),
            )
            .run(Run::new()),
    );
    g.job(
        "groupby_type",
        keys()
            .groupby(kind, |_t: String, a: Option<i64>, _r: KeyRecord| {
                Ok(a.unwrap_or(0) + 1)
            })
            .run(Run::new()),
    );
    g.job(
        "localgroupby_type",
        keys()
            .localgroupby(kind, |_t: String, a: Option<i64>, _r: KeyRecord| {
                Ok(a.unwrap_or(0) + 1)
            })
            .run(Run::new()),
    );
    g.job(
        "batchgroupby_type",
        keys()
            .batchgroupby(kind, |_t: String, rs: Vec<KeyRecord>| Ok(rs.len()))
            .run(Run::new()),
    );

    // local operations
    g.job(
        "repartition",
        names()
            .repartition(|k: String| Ok(k))
            .map(|k: String| Ok(k.to_uppercase()))
            .run(Run::new()),
    );
    g.job(
        "flatmap_split",
        names()
            .flatmap(|k: String| Ok(k.split(':').map(String::from).collect::<Vec<_>>()))
            .run(Run::new()),
    );
    g.job(
        "filter_prefix",
        names()
            .filter(|k: String| Ok(k.starts_with('a')))
            .run(Run::new()),
    );
    g.job(
        "foreach_copy",
        names()
            .filter(|k: String| Ok(k.starts_with("src:")))
            .foreach(|k: String| {
                let value: Option<String> = execute_as(["get", k.as_str()])?;
                let copy = format!("copy:{}", &k["src:".len()..]);
                execute(["set", copy.as_str(), value.unwrap_or_default().as_str()])?;
                Ok(())
            })
            .map(|k: String| Ok(k))
            .run(Run::new()),
    );

    // errors
    g.job(
        "fail_some",
        names()
            .map(|k: String| {
                if k.contains("bad") {
                    Err(Error::msg(format!("bad key {k}")))
                } else {
                    Ok(k)
                }
            })
            .run(Run::new()),
    );
    g.job(
        "wrongtype",
        names()
            .map(|k: String| execute(["hget", k.as_str(), "f"]))
            .run(Run::new()),
    );

    // encoding and host functions
    g.job(
        "values",
        GearsBuilder::generator(|_args: Vec<String>| {
            Ok(vec![
                Kind::Nil(()),
                Kind::Int(7),
                Kind::Float(2.5),
                Kind::Text("text".into()),
                Kind::Bytes(vec![0xff, 0x00]),
                Kind::List((1, "a".into())),
                Kind::Map([("a".to_string(), 1)].into_iter().collect()),
                Kind::Bool(true),
            ])
        })
        .run(Run::new()),
    );
    g.job(
        "atomic",
        one_record()
            .map(|_: i64| {
                atomic(|| {
                    execute_as::<i64>(["incr", "kitchen:atomic"])?;
                    execute_as::<i64>(["incr", "kitchen:atomic"])
                })
            })
            .run(Run::new()),
    );
    // What the sandbox lets through: [files seen, environment variables, arguments,
    // whether a TCP connection to Redis itself succeeded]
    g.job(
        "sandbox",
        one_record()
            .map(|_: i64| {
                let files = ["/", ".", "/etc/passwd"]
                    .iter()
                    .filter(|p| std::fs::metadata(p).is_ok())
                    .count();
                let tcp = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
                Ok((
                    files,
                    std::env::vars().count(),
                    std::env::args().count(),
                    tcp,
                ))
            })
            .run(Run::new()),
    );
    g.job(
        "env",
        one_record()
            .map(|_: i64| {
                Ok((
                    shard_id(),
                    hashtag(),
                    config_get("MaxExecutions"),
                    config_get("kitchen.user"),
                ))
            })
            .run(Run::new()),
    );
    // execute() of any command (the safety tests): the reply as text, an error as "ERR: ...".
    for (name, mode) in [("exec", Mode::Async), ("exec_sync", Mode::Sync)] {
        g.job(
            name,
            GearsBuilder::generator(|args: Vec<String>| Ok([args]))
                .map(|args: Vec<String>| {
                    Ok(match execute(&args) {
                        Ok(v) => format!("{v:?}"),
                        Err(e) => format!("ERR: {e}"),
                    })
                })
                .run(Run::new().mode(mode)),
        );
    }
    g.job(
        "log",
        one_record()
            .map(|_: i64| {
                log("kitchen says hi");
                Ok("logged")
            })
            .run(Run::new()),
    );
    // A level named at run time (args: level, message): try_log's answer as text.
    g.job(
        "try_log",
        GearsBuilder::generator(|args: Vec<String>| Ok([args]))
            .map(|args: Vec<String>| {
                let [level, message] = args.as_slice() else {
                    return Err(Error::msg("try_log takes a level and a message"));
                };
                Ok(match try_log(level, message) {
                    Ok(()) => "logged".to_string(),
                    Err(e) => format!("ERR: {e}"),
                })
            })
            .run(Run::new()),
    );
    // The contract's log import itself (the SDK's log_at only names known levels): a
    // level it does not know fails the call.
    g.job(
        "raw_log",
        GearsBuilder::generator(|args: Vec<String>| Ok([args]))
            .map(|args: Vec<String>| {
                let [level, message] = args.as_slice() else {
                    return Err(Error::msg("raw_log takes a level and a message"));
                };
                gears::__rt::bindings::redisgears::guest::host::log(level, message);
                Ok("logged")
            })
            .run(Run::new()),
    );
}

fn registrations(g: &mut Guest) {
    g.registration(
        GearsBuilder::new("KeysReader")
            .foreach(|r: KeyRecord| {
                execute(["sadd", "wasm_seen", r.key.as_str()])?;
                Ok(())
            })
            .register(Register::new().prefix("wsync:*").mode(Mode::Sync)),
    );
    g.registration(
        GearsBuilder::new("KeysReader")
            .foreach(|r: KeyRecord| {
                execute(["sadd", "wasm_seen_async", r.key.as_str()])?;
                Ok(())
            })
            .register(Register::new().prefix("wasync:*").mode(Mode::Async)),
    );
    g.registration(
        GearsBuilder::new("StreamReader")
            .foreach(|m: StreamRecord| {
                for (field, value) in &m.value {
                    execute(["set", &format!("ws:{field}"), value.as_str()])?;
                }
                Ok(())
            })
            .register(Register::new().prefix("wstream").batch(1)),
    );
    g.registration(
        GearsBuilder::new("CommandReader")
            .map(|mut record: Vec<Value>| {
                record.reverse();
                Ok(record)
            })
            .register(Register::new().trigger("wasm_echo").mode(Mode::Sync)),
    );
    g.registration(
        GearsBuilder::new("CommandReader")
            .map(|record: Vec<String>| {
                let mut args = record[1..].to_vec();
                args.extend(["hooked".to_string(), "1".to_string()]);
                call_next(&args)
            })
            .register(
                Register::new()
                    .hook("hset")
                    .keyprefix("whook:")
                    .mode(Mode::Sync),
            ),
    );
    g.registration(
        GearsBuilder::new("TimeReader")
            .foreach(|_t: TimeRecord| {
                execute(["incr", "wasm_ticks"])?;
                Ok(())
            })
            .register(Register::new().interval(100).mode(Mode::Async)),
    );
    g.registration(
        GearsBuilder::new("KeysReader")
            .foreach(|_r: KeyRecord| override_reply("+WASM-LPUSH"))
            .register(
                Register::new()
                    .prefix("wcmd:*")
                    .commands(["lpush"])
                    .mode(Mode::Sync),
            ),
    );
    g.registration(
        GearsBuilder::new("KeysReader")
            .foreach(|r: KeyRecord| {
                execute(["set", &format!("missed:{}", r.key), "1"])?;
                Ok(())
            })
            .register(
                Register::new()
                    .prefix("wmiss:*")
                    .event_types(["keymiss"])
                    .mode(Mode::Sync),
            ),
    );
}

fn describe(g: &mut Guest) {
    jobs(g);
    registrations(g);
}

gears::guest!(describe);
