// pyo3 links libpython but sets no rpath: without one the module would load whichever
// libpython the dynamic linker finds first (PITFALLS.md), so a development build points at
// the interpreter it was built with. A build for other machines (`make dist`, with
// GEARS_NO_RPATH=1) carries no path of this one: there the loader finds libpython.
fn main() {
    println!("cargo:rerun-if-env-changed=GEARS_NO_RPATH");
    #[cfg(feature = "python")]
    if std::env::var_os("GEARS_NO_RPATH").is_none() {
        pyo3_build_config::add_libpython_rpath_link_args();
    }
}
