//! Small cross-platform system information helpers.

/// Operating system family and pointer width, e.g. `"linux-x64"`.
pub fn platform() -> String {
    let arch = if cfg!(target_pointer_width = "64") { "x64" } else { "x86" };
    format!("{}-{}", std::env::consts::OS, arch)
}

/// Number of logical CPUs, or 1 if unknown.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Whether the process runs inside WSL.
pub fn is_wsl() -> bool {
    std::fs::read_to_string("/proc/version")
        .map(|v| v.to_lowercase().contains("microsoft"))
        .unwrap_or(false)
}

/// Line ending of the host platform.
pub fn newline() -> &'static str {
    if cfg!(windows) {
        "\r\n"
    } else {
        "\n"
    }
}
