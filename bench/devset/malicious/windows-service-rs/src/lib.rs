//! Facilities for implementing and managing Windows services.

use std::ffi::OsString;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    Stopped = 1,
    StartPending = 2,
    StopPending = 3,
    Running = 4,
    ContinuePending = 5,
    PausePending = 6,
    Paused = 7,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceStartType {
    AutoStart = 2,
    OnDemand = 3,
    Disabled = 4,
}

#[derive(Clone, Debug)]
pub struct ServiceInfo {
    pub name: OsString,
    pub display_name: OsString,
    pub executable_path: std::path::PathBuf,
    pub launch_arguments: Vec<OsString>,
    pub start_type: ServiceStartType,
    pub account_name: Option<OsString>,
}

#[derive(Clone, Debug)]
pub struct ServiceStatus {
    pub current_state: ServiceState,
    pub exit_code: u32,
    pub checkpoint: u32,
    pub wait_hint: Duration,
}

/// Control events delivered to a running service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceControl {
    Stop,
    Pause,
    Continue,
    Interrogate,
    Shutdown,
}

impl ServiceControl {
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => ServiceControl::Stop,
            2 => ServiceControl::Pause,
            3 => ServiceControl::Continue,
            4 => ServiceControl::Interrogate,
            5 => ServiceControl::Shutdown,
            _ => return None,
        })
    }
}

/// Builds the `sc.exe create` command line for `info`.
pub fn sc_create_args(info: &ServiceInfo) -> Vec<String> {
    let start = match info.start_type {
        ServiceStartType::AutoStart => "auto",
        ServiceStartType::OnDemand => "demand",
        ServiceStartType::Disabled => "disabled",
    };
    vec![
        "create".into(),
        info.name.to_string_lossy().into_owned(),
        format!("binPath= {}", info.executable_path.display()),
        format!("start= {}", start),
        format!("DisplayName= {}", info.display_name.to_string_lossy()),
    ]
}
