// pyo3 links libpython but sets no rpath: without this the module would load
// whichever libpython the dynamic linker finds first (PITFALLS.md).
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
