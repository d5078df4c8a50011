//! The readers of run() that need no user code, built from their named arguments.
//! Readers that call user code (PythonReader, a KeysOnlyReader patternGenerator, a
//! guest's GeneratorReader) are built by their front end.

use super::args::{flag_or, number_or, text_or, Args};
use super::validate::{self, MAX_COUNT};
use crate::engine::plan::Plan;
use crate::engine::reader::Reader;
use crate::globals::globals;
use crate::readers::keys::{KeysReader, RecordShape};
use crate::readers::{shards::ShardsIdReader, stream::StreamReader};

/// The reader of one execution of `plan`: a native one, or its host's when the reader
/// calls user code.
pub fn reader_of(plan: &Plan) -> anyhow::Result<Box<dyn Reader>> {
    if let Some(reader) =
        native_reader(&plan.reader.name, &plan.reader).map_err(anyhow::Error::msg)?
    {
        return Ok(reader);
    }
    let by_host = match &plan.host {
        Some(host) => host.reader(&plan.reader, plan.first_step_native())?,
        None => None,
    };
    by_host.ok_or_else(|| anyhow::anyhow!("reader {} does not support run()", plan.reader.name))
}

/// The reader `name` over `args`, or None when the front end must build it.
pub fn native_reader(name: &str, args: &dyn Args) -> Result<Option<Box<dyn Reader>>, String> {
    if let Some(allowed) = allowed_args(name) {
        validate::known(&args.names(), allowed)?;
    }
    Ok(Some(match name {
        "KeysReader" => {
            let shape = if flag_or(args, "readValue", true)? {
                RecordShape::WithValue
            } else {
                RecordShape::KeyAndEvent
            };
            Box::new(KeysReader::new(
                text_or(args, "pattern", "*")?,
                flag_or(args, "noScan", false)?,
                shape,
                None,
            ))
        }
        "KeysOnlyReader" if !args.has("patternGenerator") => Box::new(KeysReader::new(
            text_or(args, "pattern", "*")?,
            flag_or(args, "noScan", false)?,
            RecordShape::Name,
            Some(
                validate::number("count", number_or(args, "count", 1000)?, 1, MAX_COUNT)? as usize,
            ),
        )),
        "StreamReader" => Box::new(StreamReader::new(
            text_or(args, "key", "*")?,
            text_or(args, "fromId", "0-0")?,
        )),
        // Without a cluster RedisGears 1.2 yields '1' (its RG.INFOCLUSTER says "no cluster
        // mode"); a cluster node yields its node id.
        "ShardsIDReader" => Box::new(ShardsIdReader::new(if globals().topology().is_cluster() {
            globals().shard_id.clone()
        } else {
            "1".to_string()
        })),
        "CommandReader" | "TimeReader" => {
            return Err(format!("reader {name} does not support run()"))
        }
        _ => return Ok(None),
    }))
}

/// The arguments run() of each reader takes (None: a reader this module does not know).
fn allowed_args(reader: &str) -> Option<&'static [&'static str]> {
    Some(match reader {
        "KeysReader" => &["pattern", "noScan", "readValue"],
        "KeysOnlyReader" => &["pattern", "count", "noScan", "patternGenerator"],
        "StreamReader" => &["key", "fromId"],
        "PythonReader" => &["generator"],
        // A guest's generator, and the arguments RG.WASMRUN hands it.
        "GeneratorReader" => &["generator", "args"],
        "ShardsIDReader" | "CommandReader" | "TimeReader" => &[],
        _ => return None,
    })
}
