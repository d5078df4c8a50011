// The libpython the Python build of the module was linked against, by its soname
// (libpython3.11.so.1.0): the name the loader asks the dynamic linker for at run time.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let soname = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('INSTSONAME') or '')",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| s.starts_with("libpython") && s.contains(".so"))
        .unwrap_or_else(|| panic!("{python} does not say its libpython's soname (INSTSONAME)"));
    println!("cargo:rustc-env=GEARS_LIBPYTHON={soname}");
}
