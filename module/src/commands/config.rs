//! RG.CONFIGGET and RG.CONFIGSET.

use redis_module::{Context, RedisString};

use super::{arity, text, Answer};
use crate::config::{self, Set};
use crate::engine::value::Value;

pub fn config_get(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, None)?;
    let mut out = Vec::new();
    for arg in &args[1..] {
        let name = text(arg)?;
        out.push(match config::get_by_name(&name) {
            Some(v) => match v.parse::<i64>() {
                Ok(n)
                    if config::ENTRIES
                        .iter()
                        .any(|e| e.name.eq_ignore_ascii_case(&name)) =>
                {
                    Value::Int(n)
                }
                _ => Value::Str(v),
            },
            None => Value::Error(format!("Unsupported config parameter: {name}")),
        });
    }
    Ok(Answer::Reply(Value::List(out)))
}

pub fn config_set(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 3, None)?;
    if args.len().is_multiple_of(2) {
        return Err("ERR RG.CONFIGSET takes name value pairs".into());
    }
    let mut out = Vec::new();
    for pair in args[1..].chunks(2) {
        let (name, value) = (text(&pair[0])?, text(&pair[1])?);
        let set = config::set_by_name(&name, &value, false);
        if set.is_ok() {
            crate::redis::log::notice(&format!("config {name}"), || {
                format!("RG.CONFIGSET {name} {value}")
            });
        }
        out.push(match set {
            Ok(Set::Known) => Value::Status("OK".into()),
            Ok(Set::Extra) => {
                Value::Status("OK - value was saved in extra config dictionary".into())
            }
            Err(e) => Value::Error(format!("ERR {e}")),
        });
    }
    Ok(Answer::Reply(Value::List(out)))
}
