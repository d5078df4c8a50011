//! REQUIREMENTS: the pip packages a session needs (RedisGears 1.2's RG.PYEXECUTE option).
//!
//! Installing is the shim's job (`gears/_requirements.py`: pip, one whole folder per
//! requirement under the requirements root, renamed into place once complete). This file
//! holds what the host decides:
//!
//! - **Where**: PythonRequirementsDir, by default `gears-requirements` next to the module
//!   (`make build` wipes `gears-python`, never this).
//! - **From where**: PythonIndexUrl (pip's default index when empty), or only the wheels
//!   of PythonWheelsDir when it is set (machines with no index).
//! - **Carried with the session**: a session's requirements travel inside its source, as
//!   a last comment line (`attach`, `of`). Whatever keeps or sends a session's source
//!   (the RDB, RG.INNERREGISTER to replicas and the AOF, a change staged on every master,
//!   the cluster's catch-up) therefore carries them, and re-creating the session installs
//!   them first when they are missing. The line comes last so the script's line numbers
//!   stay the user's.
//! - **When**: RG.PYEXECUTE installs what is missing on the helper thread, its client
//!   blocked (pip takes seconds); re-creating a session (load, replica, a peer master)
//!   installs on the thread that re-creates it.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::config;

/// The marker of the line that carries a session's requirements.
const TRAILER: &str = "\n#!gears-requirements ";

/// Configuration entries (text).
pub const DIR: &str = "PythonRequirementsDir";
pub const INDEX_URL: &str = "PythonIndexUrl";
pub const WHEELS_DIR: &str = "PythonWheelsDir";

/// How long one pip step may take.
const PIP_TIMEOUT_SECS: u64 = 600;

/// `code` carrying `requirements` (unchanged when there are none).
pub fn attach(code: &str, requirements: &[String]) -> String {
    if requirements.is_empty() {
        return code.to_string();
    }
    let list = serde_json::to_string(requirements).unwrap_or_else(|_| "[]".into());
    format!("{code}{TRAILER}{list}")
}

/// The requirements a session's source carries.
pub fn of(code: &str) -> Vec<String> {
    code.rfind(TRAILER)
        .map(|at| &code[at + TRAILER.len()..])
        .filter(|rest| !rest.contains('\n'))
        .and_then(|list| serde_json::from_str(list).ok())
        .unwrap_or_default()
}

/// The folder requirements are installed under.
pub fn root() -> PathBuf {
    if let Some(dir) = config::get_by_name(DIR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    super::paths::module_dir()
        .map(|d| d.join("gears-requirements"))
        .unwrap_or_else(|| PathBuf::from("gears-requirements"))
}

fn text(name: &str) -> String {
    config::get_by_name(name).unwrap_or_default()
}

/// Runs `f` with the GIL, the shim's `gears._requirements` and the requirements root; an
/// error is its exception's text (pip's message, as the user should read it).
fn with_shim<T>(
    f: impl for<'py> FnOnce(Python<'py>, Bound<'py, PyModule>, String) -> PyResult<T>,
) -> Result<T, String> {
    Python::attach(|py| {
        let root = root().to_string_lossy().into_owned();
        py.import("gears._requirements")
            .and_then(|shim| f(py, shim, root))
            .map_err(|e| {
                e.value(py)
                    .str()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|_| e.to_string())
            })
    })
}

/// The requirements of `specs` not installed yet.
pub fn missing(specs: &[String]) -> Result<Vec<String>, String> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    with_shim(|_, shim, root| {
        shim.call_method1("missing", (root, specs.to_vec()))?
            .extract()
    })
}

/// Installs the requirements of `specs` that are missing (all of them with `force`),
/// and puts them all on sys.path. Slow when something must be installed: never on the
/// main thread of a serving Redis (RG.PYEXECUTE calls it on the helper thread).
pub fn ensure(specs: &[String], force: bool) -> Result<(), String> {
    if specs.is_empty() {
        return Ok(());
    }
    with_shim(|py, shim, root| {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("force", force)?;
        kwargs.set_item("index_url", text(INDEX_URL))?;
        kwargs.set_item("wheels_dir", text(WHEELS_DIR))?;
        kwargs.set_item("timeout", PIP_TIMEOUT_SECS)?;
        // pip runs in a child process; waiting for it releases the GIL.
        shim.call_method("ensure", (root, specs.to_vec()), Some(&kwargs))?;
        Ok(())
    })
}

/// Whether `spec` is installed, and the files pip downloaded for it (one GIL entry).
pub fn status(spec: &str) -> (bool, Vec<String>) {
    with_shim(|_, shim, root| {
        let installed = shim
            .call_method1("is_installed", (&root, spec))?
            .extract()?;
        let wheels = shim.call_method1("wheels", (&root, spec))?.extract()?;
        Ok((installed, wheels))
    })
    .unwrap_or_default()
}

/// Whether `spec` is installed.
pub fn is_installed(spec: &str) -> bool {
    with_shim(|_, shim, root| shim.call_method1("is_installed", (root, spec))?.extract())
        .unwrap_or(false)
}

/// [(file name, bytes)] of an installed requirement, for RG.PYEXPORTREQ.
pub fn export(spec: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    with_shim(|_, shim, root| shim.call_method1("export", (root, spec))?.extract())
}

/// Installs `spec` from `files` alone, for RG.PYIMPORTREQ.
pub fn import(spec: &str, files: Vec<(String, Vec<u8>)>) -> Result<(), String> {
    with_shim(|py, shim, root| {
        let files = PyList::new(
            py,
            files
                .into_iter()
                .map(|(n, b)| (n, pyo3::types::PyBytes::new(py, &b).unbind())),
        )?;
        shim.call_method1("import_", (root, spec, files, PIP_TIMEOUT_SECS))?;
        Ok(())
    })
}

/// What an installed requirement was built for: exported wheels install only where
/// this is the same (an interpreter version and a platform).
pub fn platform() -> String {
    Python::attach(|py| -> PyResult<String> {
        let sysconfig = py.import("sysconfig")?;
        let plat: String = sysconfig.call_method0("get_platform")?.extract()?;
        let version = py.import("sys")?.getattr("version_info")?;
        let major: u8 = version.getattr("major")?.extract()?;
        let minor: u8 = version.getattr("minor")?.extract()?;
        Ok(format!("cp{major}{minor}-{plat}"))
    })
    .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_ride_on_the_last_line() {
        let code = "GB().run()\n# done";
        assert_eq!(attach(code, &[]), code);
        let reqs = vec!["six".to_string(), "requests >= 2, < 3".to_string()];
        let carried = attach(code, &reqs);
        assert!(carried.starts_with(code));
        assert_eq!(of(&carried), reqs);
        assert!(of(code).is_empty());
        // A marker the user wrote in the middle of a script is not a trailer.
        let inside = format!("{carried}\nx = 1");
        assert!(of(&inside).is_empty());
    }
}
