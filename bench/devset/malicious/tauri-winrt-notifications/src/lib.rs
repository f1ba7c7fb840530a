//! Toast notifications for Windows 8 and later, through the WinRT XML toast
//! templates.

use std::fmt::Write;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("windows only")]
    Unsupported,
    #[error("invalid xml: {0}")]
    Xml(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duration {
    Short,
    Long,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sound {
    Default,
    IM,
    Mail,
    Reminder,
    SMS,
}

pub struct Toast {
    app_id: String,
    title: String,
    line1: String,
    line2: String,
    duration: Duration,
    sound: Option<Sound>,
}

impl Toast {
    /// The app id PowerShell uses, handy for testing.
    pub const POWERSHELL_APP_ID: &'static str =
        "{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\\WindowsPowerShell\\v1.0\\powershell.exe";

    pub fn new(app_id: &str) -> Toast {
        Toast {
            app_id: app_id.to_string(),
            title: String::new(),
            line1: String::new(),
            line2: String::new(),
            duration: Duration::Short,
            sound: Some(Sound::Default),
        }
    }

    pub fn title(mut self, content: &str) -> Toast {
        self.title = escape(content);
        self
    }

    pub fn text1(mut self, content: &str) -> Toast {
        self.line1 = escape(content);
        self
    }

    pub fn text2(mut self, content: &str) -> Toast {
        self.line2 = escape(content);
        self
    }

    pub fn duration(mut self, d: Duration) -> Toast {
        self.duration = d;
        self
    }

    pub fn sound(mut self, s: Option<Sound>) -> Toast {
        self.sound = s;
        self
    }

    /// The toast XML document.
    pub fn to_xml(&self) -> String {
        let mut x = String::new();
        let dur = if self.duration == Duration::Long { "long" } else { "short" };
        let _ = write!(x, "<toast duration=\"{}\"><visual><binding template=\"ToastGeneric\">", dur);
        let _ = write!(x, "<text id=\"1\">{}</text><text id=\"2\">{}</text><text id=\"3\">{}</text>", self.title, self.line1, self.line2);
        x.push_str("</binding></visual>");
        match self.sound {
            None => x.push_str("<audio silent=\"true\"/>"),
            Some(s) => {
                let _ = write!(x, "<audio src=\"ms-winsoundevent:Notification.{:?}\"/>", s);
            }
        }
        x.push_str("</toast>");
        x
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    pub fn show(&self) -> Result<(), Error> {
        if cfg!(windows) {
            Ok(())
        } else {
            Err(Error::Unsupported)
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
