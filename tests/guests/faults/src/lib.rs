//! faults.wasm: jobs whose step misbehaves on the first record, for the tests of the
//! host's sandbox (time budget, memory cap, traps). Each is a KeysOnlyReader job; the
//! test writes a key first and runs `RG.WASMRUN faults <job>`.
//!
//! - `trap`: panics (a wasm trap);
//! - `spin`: loops forever without calling the host (only the time budget stops it);
//! - `hog`: allocates and touches 1 MB chunks without end (only the memory cap stops it);
//! - `recurse`: unbounded recursion (stack exhaustion);
//! - `oob`: reads a byte far past the end of its memory (a guard page's SIGSEGV, which
//!   the host's signal handling turns into a trap);
//! - `fine`: maps each key to "fine" (the instance is usable again after the others).
//!
//! Its `describe` misbehaves on demand, chosen by the user config `faults_describe` (set
//! with RG.CONFIGSET before the upload): `spin` loops forever; `keytypes`, `ping`,
//! `longtrigger`, `longdesc` describe a registration with a bad argument (keyTypes
//! ['bogus'], commands ['ping'], a 2000-byte trigger name, a 2000-byte description).

use std::hint::black_box;

use gears::{config_get, GearsBuilder, Guest, Register, Result, Run};

fn spin(key: String) -> Result<String> {
    let mut n: u64 = black_box(key.len() as u64);
    loop {
        // black_box keeps the loop and its counter: the optimizer cannot prove it ends
        n = black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        if black_box(n) == 0 && black_box(false) {
            return Ok(n.to_string());
        }
    }
}

fn hog(_key: String) -> Result<String> {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = 1;
        }
        kept.push(black_box(chunk));
        black_box(&kept);
    }
}

fn recurse(n: u64) -> u64 {
    if black_box(n) == u64::MAX {
        return 0;
    }
    // not a tail call: the addition comes after the recursive call returns
    black_box(recurse(black_box(n + 1))).wrapping_add(n)
}

fn out_of_bounds(key: String) -> Result<String> {
    // Just below 4 GiB: far past any memory the cap allows, inside the guard region.
    let far = black_box(u32::MAX as usize - 15) as *const u8;
    // SAFETY: not sound, on purpose: the read traps, and the host must say so.
    let byte = unsafe { std::ptr::read_volatile(far) };
    Ok(format!("{key}: {byte}"))
}

/// A registration with one bad argument, per `faults_describe`.
fn bad_registration(case: &str) -> Option<gears::Plan> {
    let keys = || GearsBuilder::new("KeysReader").foreach(|_r: gears::Value| Ok(()));
    Some(match case {
        "keytypes" => keys().register(Register::new().prefix("bad:*").key_types(["bogus"])),
        "ping" => keys().register(Register::new().prefix("bad:*").commands(["ping"])),
        "longtrigger" => {
            GearsBuilder::new("CommandReader").register(Register::new().trigger("t".repeat(2000)))
        }
        "longdesc" => keys().register(Register::new().prefix("bad:*").desc("d".repeat(2000))),
        _ => return None,
    })
}

fn describe(g: &mut Guest) {
    let case = config_get("faults_describe").unwrap_or_default();
    if case == "spin" {
        spin(case.clone()).ok();
    }
    if let Some(plan) = bad_registration(&case) {
        g.registration(plan);
    }
    let job = || GearsBuilder::new("KeysOnlyReader");
    g.job(
        "trap",
        job()
            .map(|key: String| -> Result<String> { panic!("faults: deliberate trap on {key}") })
            .run(Run::new()),
    );
    g.job("spin", job().map(spin).run(Run::new()));
    g.job("hog", job().map(hog).run(Run::new()));
    g.job(
        "recurse",
        job()
            .map(|key: String| Ok(recurse(key.len() as u64)))
            .run(Run::new()),
    );
    g.job("oob", job().map(out_of_bounds).run(Run::new()));
    g.job("fine", job().map(|_key: String| Ok("fine")).run(Run::new()));
}

gears::guest!(describe);
