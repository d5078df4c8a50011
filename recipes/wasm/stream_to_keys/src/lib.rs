//! Recipe 3 (recipes/python/stream_to_keys.py) as a Wasm guest: every message added to the stream
//! `inputStream` is consumed, and each of its field/value pairs becomes a string key.

use gears::{execute, GearsBuilder, Guest, Register, StreamRecord};

fn describe(g: &mut Guest) {
    g.registration(
        GearsBuilder::new("StreamReader")
            // one record per field/value pair of the message
            .flatmap(|m: StreamRecord| Ok(m.value))
            // make sure each pair is written on the shard that owns its key
            .repartition(|(field, _value): (String, String)| Ok(field))
            .foreach(|(field, value): (String, String)| {
                execute(["set", field.as_str(), value.as_str()])?;
                Ok(())
            })
            .register(Register::new().prefix("inputStream")),
    );
}

gears::guest!(describe);
