//! Recipe 1 (recipes/wasm/all_keys) registered in sync mode: the benchmark of keyspace
//! triggers compares it with the async recipe. A guest's registrations are fixed when it
//! is described, so the mode needs a guest of its own.

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
            .register(Register::new().mode(Mode::Sync)),
    );
}

/// A keyspace record's key name.
fn key<'a>(r: &View<'a>) -> &'a str {
    r.get("key").and_then(|k| k.as_str()).unwrap_or_default()
}

gears::guest!(describe);
