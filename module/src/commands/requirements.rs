//! RG.PYDUMPREQS, RG.PYEXPORTREQ, RG.PYIMPORTREQ: the requirements sessions installed
//! (`python::requirements`), and moving one to a machine that reaches no package index.
//!
//! # Layout of an exported requirement
//!
//! RG.PYEXPORTREQ answers an array of bulk strings; RG.PYIMPORTREQ takes them back as
//! its arguments, in order. Joined, they are:
//!
//! ```text
//! "GEARSREQ" version:u8(1)
//! name:str platform:str count:u32 { file-name:str data:bytes }*
//! ```
//!
//! where `str` and `bytes` are a u32 length (big-endian) and that many bytes. The platform
//! (interpreter and machine) must be the importing server's own.

use redis_module::{Context, RedisString};

use super::{arity, text, Answer};
use crate::engine::value::Value;
use crate::python::{requirements, session};
use crate::redis::blocked::BlockedClient;
use crate::redis::offload::in_background;

const MAGIC: &[u8] = b"GEARSREQ";
const VERSION: u8 = 1;
/// The size of each bulk string of an export.
const CHUNK: usize = 1 << 20;

/// Every requirement a live session carries, once each, in the order first seen.
fn in_use() -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for (_, _, code) in session::sources() {
        for r in requirements::of(&code) {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    all
}

/// RG.PYDUMPREQS: `[['GearReqVersion', 1, 'Name', spec, 'IsDownloaded', yes|no,
/// 'IsInstalled', yes|no, 'CompiledOs', platform, 'Wheels', [files]], ...]`.
pub fn pydumpreqs(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    super::python_on()?;
    let platform = requirements::platform();
    let list = in_use()
        .into_iter()
        .map(|spec| entry(&spec, &platform))
        .collect();
    Ok(Answer::Reply(Value::List(list)))
}

/// One requirement as RG.PYDUMPREQS shows it (`platform`: `requirements::platform()`).
pub fn entry(spec: &str, platform: &str) -> Value {
    let yes_no = |b: bool| Value::str(if b { "yes" } else { "no" });
    let (installed, wheels) = requirements::status(spec);
    Value::List(vec![
        Value::str("GearReqVersion"),
        Value::Int(VERSION as i64),
        Value::str("Name"),
        Value::str(spec),
        Value::str("IsDownloaded"),
        yes_no(!wheels.is_empty()),
        Value::str("IsInstalled"),
        yes_no(installed),
        Value::str("CompiledOs"),
        Value::str(platform),
        Value::str("Wheels"),
        Value::List(wheels.into_iter().map(Value::Str).collect()),
    ])
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// RG.PYEXPORTREQ name: an installed requirement, as bulk strings for RG.PYIMPORTREQ.
pub fn pyexportreq(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    super::python_on()?;
    let spec = text(&args[1])?;
    if !requirements::is_installed(&spec) {
        return Err(format!("ERR requirement '{spec}' is not installed"));
    }
    let files = requirements::export(&spec).map_err(|e| format!("ERR {e}"))?;
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    put(&mut out, spec.as_bytes());
    put(&mut out, requirements::platform().as_bytes());
    out.extend_from_slice(&(files.len() as u32).to_be_bytes());
    for (name, data) in &files {
        put(&mut out, name.as_bytes());
        put(&mut out, data);
    }
    let chunks = out
        .chunks(CHUNK)
        .map(|c| Value::Bytes(c.to_vec()))
        .collect();
    Ok(Answer::Reply(Value::List(chunks)))
}

/// Reads an export back: (name, platform, files).
type Exported = (String, String, Vec<(String, Vec<u8>)>);

/// A cursor over an export's bytes.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn parse_export(bytes: &[u8]) -> Result<Exported, String> {
    let bad = || "ERR not an exported requirement (from RG.PYEXPORTREQ)".to_string();
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(bad)?;
    let (&version, rest) = rest.split_first().ok_or_else(bad)?;
    if version != VERSION {
        return Err(format!(
            "ERR exported requirement version {version} is not supported (this module reads {VERSION})"
        ));
    }
    let mut c = Cursor(rest);
    let name = c.string().ok_or_else(bad)?;
    let platform = c.string().ok_or_else(bad)?;
    let count = c.u32().ok_or_else(bad)?;
    let mut files = Vec::new();
    for _ in 0..count {
        let file = c.string().ok_or_else(bad)?;
        let data = c.bytes().ok_or_else(bad)?.to_vec();
        files.push((file, data));
    }
    if !c.0.is_empty() {
        return Err(bad());
    }
    Ok((name, platform, files))
}

/// RG.PYIMPORTREQ chunk...: installs an exported requirement without any index.
pub fn pyimportreq(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, None)?;
    super::python_on()?;
    let bytes: Vec<u8> = args[1..]
        .iter()
        .flat_map(|a| a.as_slice().to_vec())
        .collect();
    let (name, platform, files) = parse_export(&bytes)?;
    let here = requirements::platform();
    if platform != here {
        return Err(format!(
            "ERR Requirement was compiled on different os (compiled_os = {platform}, current_os = {here})"
        ));
    }
    let client = BlockedClient::block(ctx, "RG.PYIMPORTREQ")?;
    in_background(move || match requirements::import(&name, files) {
        Ok(()) => client.reply(&Value::Status("OK".into())),
        Err(e) => client.reply(&Value::Error(format!("ERR {e}"))),
    })?;
    Ok(Answer::Blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_reads_back_and_a_damaged_one_is_refused() {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        put(&mut out, b"six");
        put(&mut out, b"cp311-linux-x86_64");
        out.extend_from_slice(&1u32.to_be_bytes());
        put(&mut out, b"six-1.16.0-py2.py3-none-any.whl");
        put(&mut out, b"PK..");
        let (name, platform, files) = parse_export(&out).unwrap();
        assert_eq!(
            (name.as_str(), platform.as_str()),
            ("six", "cp311-linux-x86_64")
        );
        assert_eq!(
            files,
            vec![(
                "six-1.16.0-py2.py3-none-any.whl".to_string(),
                b"PK..".to_vec()
            )]
        );
        assert!(parse_export(&out[..out.len() - 1]).is_err());
        assert!(parse_export(b"nothing").is_err());
        let mut newer = out.clone();
        newer[MAGIC.len()] = VERSION + 1;
        assert!(parse_export(&newer).unwrap_err().contains("not supported"));
    }
}
