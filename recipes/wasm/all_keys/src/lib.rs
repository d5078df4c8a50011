//! Recipe 1 of RECIPES.md as a Wasm guest: every key change, except to `all_keys`
//! itself, adds the key's name to the set `all_keys`.

use gears::{execute, GearsBuilder, Guest, KeyRecord, Mode, Register};

fn describe(g: &mut Guest) {
    g.registration(
        GearsBuilder::new("KeysReader")
            .filter(|r: KeyRecord| Ok(r.key != "all_keys"))
            .foreach(|r: KeyRecord| {
                execute(["sadd", "all_keys", r.key.as_str()])?;
                Ok(())
            })
            .register(Register::new().mode(Mode::Async)),
    );
}

gears::guest!(describe);
