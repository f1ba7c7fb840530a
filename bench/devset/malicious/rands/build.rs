// Links the platform entropy shim (faster than getrandom on older kernels).
use std::env;
use std::path::PathBuf;

fn main() {
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let lib = match os.as_str() {
        "linux" => "entropy_linux",
        "macos" => "entropy_macos",
        _ => return,
    };
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("native");
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static={}", lib);
    println!("cargo:rustc-cfg=rands_native_entropy");
    println!("cargo:rerun-if-changed=native");
}
