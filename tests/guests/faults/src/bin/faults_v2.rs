//! faults_v2.wasm: a component exporting `redisgears:guest/plans@2.0.0`, a contract of
//! another major version; the host must refuse it with a message naming both versions.

wit_bindgen::generate!({
    world: "guest",
    path: "wit-v2",
});

struct V2;

impl exports::redisgears::guest::plans::Guest for V2 {
    fn describe() -> Result<String, String> {
        Ok("contract 2.0.0".into())
    }
}

export!(V2);

fn main() {}
