//! Receivers and their channels: `log` (a line to the log writer, stderr by default),
//! `jsonl` (one JSON object a line appended to a file), `webhook` (an HTTP POST of the
//! JSON payload) and `callback` (a function registered in the process by name).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::notification::Notification;
use super::webhook::Webhook;

/// A function that receives notifications in the process, registered by name with
/// [`AlertManager::register_callback`](super::AlertManager::register_callback).
pub type Callback = Arc<dyn Fn(&Notification) + Send + Sync>;

/// Where the log channel writes.
pub(crate) type LogWriter = Arc<Mutex<Box<dyn Write + Send>>>;

/// One way of sending a notification.
#[derive(Clone, Debug)]
pub(crate) enum Channel {
    Log,
    Jsonl(PathBuf),
    Webhook(Webhook),
    Callback(String),
}

impl Channel {
    /// What it is, for the delivery statistics: `log`, `jsonl PATH`, `webhook URL`,
    /// `callback NAME`.
    pub fn describe(&self) -> String {
        match self {
            Channel::Log => "log".into(),
            Channel::Jsonl(p) => format!("jsonl {}", p.display()),
            Channel::Webhook(w) => format!("webhook {}", w.url()),
            Channel::Callback(name) => format!("callback {name}"),
        }
    }
}

/// A named set of channels (none: notifications are dropped).
#[derive(Clone, Debug)]
pub(crate) struct Receiver {
    pub name: String,
    pub channels: Vec<Channel>,
}

impl Receiver {
    /// Takes relative `jsonl` paths as relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for c in &mut self.channels {
            if let Channel::Jsonl(p) = c
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
    }
}

/// What delivery needs besides the channel: the log writer and the callbacks. Cloned into
/// each outbox, so delivery runs without the manager.
#[derive(Clone)]
pub(crate) struct Sinks {
    pub log: LogWriter,
    pub callbacks: BTreeMap<String, Callback>,
}

impl Default for Sinks {
    fn default() -> Sinks {
        Sinks {
            log: Arc::new(Mutex::new(Box::new(std::io::stderr()))),
            callbacks: BTreeMap::new(),
        }
    }
}

impl Sinks {
    /// Sends a notification through a channel; the error says why it failed.
    pub fn send(&self, channel: &Channel, n: &Notification) -> Result<(), String> {
        match channel {
            Channel::Log => {
                let mut w = self.log.lock();
                writeln!(w, "{}", super::log::line(n))
                    .and_then(|()| w.flush())
                    .map_err(|e| format!("log: {e}"))
            }
            Channel::Jsonl(path) => super::jsonl::append(path, n),
            Channel::Webhook(w) => w.post(n),
            Channel::Callback(name) => match self.callbacks.get(name) {
                Some(f) => {
                    f(n);
                    Ok(())
                }
                None => Err(format!("no callback is registered as {name:?}")),
            },
        }
    }
}
