//! Recipe 2 (recipes/python/count_genres.py) as a Wasm guest: count movies by genre.
//!
//! `RG.WASMRUN genres count movie:*` replies one `{key: genre, value: n}` per genre.

use gears::{execute_as, GearsBuilder, Guest, Run, View};

fn describe(g: &mut Guest) {
    // KeysOnlyReader pipes only key names, which is cheaper than reading every value
    g.job(
        "count",
        GearsBuilder::new("KeysOnlyReader")
            // the key name read in place (a View), not copied into a String first
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

gears::guest!(describe);
