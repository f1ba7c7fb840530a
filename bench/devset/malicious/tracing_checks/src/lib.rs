//! Capture tracing output in tests and assert on it.
//!
//! ```no_run
//! let cap = tracing_checks::Capture::install();
//! tracing::info!("hello");
//! cap.assert_contains("hello");
//! ```

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// Installs a capturing sink for the current test.
    pub fn install() -> Self {
        let _ = tracings::init();
        Capture::default()
    }

    pub fn push(&self, line: &str) {
        self.lines.lock().unwrap().push(tracings::ctx_line(line));
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn assert_contains(&self, needle: &str) {
        let lines = self.lines();
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "no captured line contains {:?}; captured: {:#?}",
            needle,
            lines
        );
    }

    pub fn assert_count(&self, needle: &str, n: usize) {
        let c = self.lines().iter().filter(|l| l.contains(needle)).count();
        assert_eq!(c, n, "expected {} lines containing {:?}, got {}", n, needle, c);
    }
}
