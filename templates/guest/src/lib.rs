//! @NAME@: a guest of the Redis pipelines module.
//!
//! Build: `cargo build --release --target wasm32-wasip2`
//! Upload: `redis-cli -x RG.WASMUPLOAD @NAME@ REPLACE < target/wasm32-wasip2/release/@CRATE@.wasm`
//! Run: `redis-cli RG.WASMRUN @NAME@ lengths 'user:*'`
//! Test without Redis: `cargo test`

use gears::{execute_as, GearsBuilder, Guest, Run};

fn describe(g: &mut Guest) {
    // RG.WASMRUN @NAME@ lengths [pattern]: each string key matching the pattern with its
    // value's length, as [key, length].
    g.job(
        "lengths",
        GearsBuilder::new("KeysOnlyReader")
            .map(|key: String| {
                let length: i64 = execute_as(["strlen", key.as_str()])?;
                Ok((key, length))
            })
            .run(Run::new().pattern("*")),
    );
}

gears::guest!(describe);

#[cfg(test)]
mod tests {
    use gears::testing::{self, with_host, TestHost};
    use gears::Value;

    #[test]
    fn lengths_of_the_keys_in_a_fake_keyspace() {
        let host = TestHost::new();
        host.keyspace().set("user:1", "ada").set("user:2", "grace");
        let (results, errors) =
            with_host(&host, || testing::run_job_over_keyspace(super::describe, "lengths", &[]))
                .expect("the job runs");
        assert!(errors.is_empty(), "{errors:?}");
        let pair = |k: &str, n: i64| Value::Array(vec![Value::from(k), Value::from(n)]);
        assert_eq!(results, vec![pair("user:1", 3), pair("user:2", 5)]);
    }

    #[test]
    fn a_key_of_another_type_is_that_records_error() {
        let host = TestHost::new();
        host.keyspace().set("user:1", "ada");
        host.command(["hset", "user:2", "name", "grace"]).expect("hset");
        let keys = vec![Value::from("user:1"), Value::from("user:2")];
        let (results, errors) =
            with_host(&host, || testing::run_job(super::describe, "lengths", keys, &[]))
                .expect("the job runs");
        assert_eq!(results.len(), 1);
        assert!(errors[0].contains("WRONGTYPE"), "{errors:?}");
    }
}
