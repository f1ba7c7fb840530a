//! Run child processes on Windows with captured output.

use std::io;
use std::process::{Command, Output, Stdio};

/// Options for running a command.
#[derive(Default, Clone, Debug)]
pub struct RunOptions {
    pub hide_window: bool,
    pub working_dir: Option<std::path::PathBuf>,
    pub env: Vec<(String, String)>,
}

/// Runs `program` with `args` and returns its output.
pub fn run(program: &str, args: &[&str], opts: &RunOptions) -> io::Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(dir) = &opts.working_dir {
        cmd.current_dir(dir);
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        if opts.hide_window {
            cmd.creation_flags(0x0800_0000);
        }
    }
    cmd.output()
}

/// Quotes an argument the way `CommandLineToArgvW` expects.
pub fn quote_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.push_str(&"\\".repeat(backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(backslashes * 2));
    out.push('"');
    out
}
