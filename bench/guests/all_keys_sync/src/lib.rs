//! Recipe 1 (recipes/wasm/all_keys) registered in sync mode: the benchmark of keyspace
//! triggers compares it with the async recipe. A guest's registrations are fixed when it
//! is described, so the mode needs a guest of its own.

use gears::{execute, GearsBuilder, Guest, KeyRecord, Mode, Register};

fn describe(g: &mut Guest) {
    g.registration(
        GearsBuilder::new("KeysReader")
            .filter(|r: KeyRecord| Ok(r.key != "all_keys"))
            .foreach(|r: KeyRecord| {
                execute(["sadd", "all_keys", r.key.as_str()])?;
                Ok(())
            })
            .register(Register::new().mode(Mode::Sync)),
    );
}

gears::guest!(describe);
