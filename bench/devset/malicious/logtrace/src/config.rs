use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogType {
    Debug,
    Info,
    Warning,
    Err,
    Fatal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verbosity {
    All,
    #[default]
    Standard,
    Quiet,
    ErrorsOnly,
}

impl Verbosity {
    pub fn allows(self, t: LogType) -> bool {
        match self {
            Verbosity::All => true,
            Verbosity::Standard => t >= LogType::Info,
            Verbosity::Quiet => t >= LogType::Warning,
            Verbosity::ErrorsOnly => t >= LogType::Err,
        }
    }
}
