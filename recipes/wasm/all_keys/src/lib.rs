//! Recipe 1 (recipes/python/all_keys.py) as a Wasm guest: every key change, except to `all_keys`
//! itself, adds the key's name to the set `all_keys`.

use gears::{execute, GearsBuilder, Guest, Mode, Register, View};

fn describe(g: &mut Guest) {
    g.registration(
        GearsBuilder::new("KeysReader")
            // the key, read where the record lies (a View): nothing else of it is decoded
            .filter_view(|r: View<'_>| Ok(key(&r) != "all_keys"))
            .foreach_view(|r: View<'_>| {
                execute(["sadd", "all_keys", key(&r)])?;
                Ok(())
            })
            .register(Register::new().mode(Mode::Async)),
    );
}

/// A keyspace record's key name.
fn key<'a>(r: &View<'a>) -> &'a str {
    r.get("key").and_then(|k| k.as_str()).unwrap_or_default()
}

gears::guest!(describe);
