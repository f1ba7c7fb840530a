//! A `log` implementation that prints grouped, changelog-style output.

use log::{Level, Log, Metadata, Record};
use std::sync::Mutex;

const GROUPS: &[(&str, &str)] = &[("feat", "Features"), ("fix", "Bug Fixes"), ("perf", "Performance"), ("docs", "Documentation")];

pub struct ChangelogLogger {
    current: Mutex<Option<&'static str>>,
    color: bool,
}

impl ChangelogLogger {
    pub fn new(color: bool) -> Self {
        ChangelogLogger { current: Mutex::new(None), color }
    }

    fn group_for(msg: &str) -> &'static str {
        let prefix = msg.split(':').next().unwrap_or("").trim();
        GROUPS.iter().find(|(k, _)| *k == prefix).map(|(_, g)| *g).unwrap_or("Other")
    }
}

impl Log for ChangelogLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= Level::Info
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        let group = Self::group_for(&msg);
        let mut cur = self.current.lock().unwrap();
        if *cur != Some(group) {
            if self.color {
                println!("\n\x1b[1;36m### {}\x1b[0m", group);
            } else {
                println!("\n### {}", group);
            }
            *cur = Some(group);
        }
        let body = msg.split_once(':').map(|(_, b)| b.trim()).unwrap_or(&msg);
        println!("- {}", body);
    }

    fn flush(&self) {}
}

/// Installs the logger globally.
pub fn init(color: bool) -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(ChangelogLogger::new(color)))?;
    log::set_max_level(log::LevelFilter::Info);
    Ok(())
}
