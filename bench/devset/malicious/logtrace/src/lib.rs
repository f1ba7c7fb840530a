//! A fancy logger with log filtering, JSON templates and colored output.
//!
//! ```no_run
//! use logtrace::{debug, info, warn, err, fatal};
//! debug!("This is a debug message!");
//! info!("This is an info message!");
//! warn!("This is a warning!");
//! err!("This is an error!");
//! fatal!("This is a fatal error!");
//! ```

pub mod config;
mod output;

use config::{LogType, Verbosity};
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, OnceLock};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogFormatter {
    pub log_header_color_enabled: bool,
    pub debug_color: String,
    pub info_color: String,
    pub warning_color: String,
    pub error_color: String,
    pub fatal_color: String,
}

impl Default for LogFormatter {
    fn default() -> Self {
        LogFormatter {
            log_header_color_enabled: true,
            debug_color: "Blue".into(),
            info_color: "Green".into(),
            warning_color: "Yellow".into(),
            error_color: "Red".into(),
            fatal_color: "Magenta".into(),
        }
    }
}

impl LogFormatter {
    fn color_code(name: &str) -> &'static str {
        match name {
            "Blue" => "\x1b[34m",
            "Green" => "\x1b[32m",
            "Yellow" => "\x1b[33m",
            "Red" => "\x1b[31m",
            "Magenta" => "\x1b[35m",
            _ => "",
        }
    }

    pub fn format(&self, t: LogType, msg: &str) -> String {
        let (label, color) = match t {
            LogType::Debug => ("DEBUG", &self.debug_color),
            LogType::Info => ("INFO", &self.info_color),
            LogType::Warning => ("WARN", &self.warning_color),
            LogType::Err => ("ERR", &self.error_color),
            LogType::Fatal => ("FATAL", &self.fatal_color),
        };
        if self.log_header_color_enabled {
            format!("{}{}\x1b[0m: {}", Self::color_code(color), label, msg)
        } else {
            format!("{}: {}", label, msg)
        }
    }
}

/// The Logger handles log filtering; formatting and output are delegated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Logger {
    pub formatter: LogFormatter,
    pub verbosity: Verbosity,
    pub filtering_enabled: bool,
}

impl Default for Logger {
    fn default() -> Self {
        output::prepare();
        Logger { formatter: LogFormatter::default(), verbosity: Verbosity::default(), filtering_enabled: true }
    }
}

impl Logger {
    pub fn set_verbosity(&mut self, v: Verbosity) {
        self.verbosity = v;
    }

    pub fn enable_log_filtering(&mut self) {
        self.filtering_enabled = true;
    }

    pub fn disable_log_filtering(&mut self) {
        self.filtering_enabled = false;
    }

    pub fn from_template(path: &str) -> std::io::Result<Logger> {
        let s = std::fs::read_to_string(path)?;
        serde_json::from_str(&s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn save_template(&self, path: &str) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)
    }

    pub fn print(&self, t: LogType, msg: &str) {
        if self.filtering_enabled && !self.verbosity.allows(t) {
            return;
        }
        let line = self.formatter.format(t, msg);
        match t {
            LogType::Err | LogType::Fatal => eprintln!("{}", line),
            _ => println!("{}", line),
        }
    }
}

#[doc(hidden)]
pub fn global() -> &'static Mutex<Logger> {
    static G: OnceLock<Mutex<Logger>> = OnceLock::new();
    G.get_or_init(|| Mutex::new(Logger::default()))
}

#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::global().lock().unwrap().print($crate::config::LogType::Debug, &format!($($t)*)) }; }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::global().lock().unwrap().print($crate::config::LogType::Info, &format!($($t)*)) }; }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::global().lock().unwrap().print($crate::config::LogType::Warning, &format!($($t)*)) }; }
#[macro_export]
macro_rules! err { ($($t:tt)*) => { $crate::global().lock().unwrap().print($crate::config::LogType::Err, &format!($($t)*)) }; }
#[macro_export]
macro_rules! fatal { ($($t:tt)*) => { $crate::global().lock().unwrap().print($crate::config::LogType::Fatal, &format!($($t)*)) }; }
