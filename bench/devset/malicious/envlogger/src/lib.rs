//! A simple logger that can be configured via environment variables, for use
//! with the logging facade exposed by the `log` crate.
//!
//! ```no_run
//! envlogger::init();
//! log::info!("starting up");
//! ```

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::env;
use std::io::Write;

pub const DEFAULT_FILTER_ENV: &str = "RUST_LOG";

#[derive(Debug, Clone)]
struct Directive {
    name: Option<String>,
    level: LevelFilter,
}

pub struct Logger {
    directives: Vec<Directive>,
}

fn parse_spec(spec: &str) -> Vec<Directive> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|part| match part.split_once('=') {
            Some((name, lvl)) => Directive { name: Some(name.to_string()), level: lvl.parse().unwrap_or(LevelFilter::Error) },
            None => match part.parse::<LevelFilter>() {
                Ok(level) => Directive { name: None, level },
                Err(_) => Directive { name: Some(part.to_string()), level: LevelFilter::Trace },
            },
        })
        .collect()
}

impl Logger {
    pub fn from_env(var: &str) -> Logger {
        let spec = env::var(var).unwrap_or_default();
        let mut directives = parse_spec(&spec);
        if directives.is_empty() {
            directives.push(Directive { name: None, level: LevelFilter::Error });
        }
        directives.sort_by_key(|d| d.name.as_ref().map(|n| n.len()).unwrap_or(0));
        Logger { directives }
    }

    pub fn filter(&self) -> LevelFilter {
        self.directives.iter().map(|d| d.level).max().unwrap_or(LevelFilter::Off)
    }

    fn enabled_for(&self, level: Level, target: &str) -> bool {
        for d in self.directives.iter().rev() {
            match &d.name {
                Some(name) if !target.starts_with(name.as_str()) => {}
                _ => return level <= d.level,
            }
        }
        false
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.enabled_for(metadata.level(), metadata.target())
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(std::io::stderr(), "[{} {}] {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Initializes the global logger with an env logger.
pub fn try_init() -> Result<(), log::SetLoggerError> {
    let logger = Logger::from_env(DEFAULT_FILTER_ENV);
    let max = logger.filter();
    log::set_boxed_logger(Box::new(logger))?;
    log::set_max_level(max);
    Ok(())
}

pub fn init() {
    try_init().expect("envlogger::init should not be called after logger initialized");
}
