//! Progress bars on stderr, shown only when stderr is a terminal: piped or redirected, the
//! tool prints no progress at all.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar, or nothing when stderr is not a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar counting items (rows, index entries) towards a total the engine reports.
    pub fn items(label: &str) -> Progress {
        Progress::new(
            label,
            None,
            "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({eta})",
        )
    }

    /// A bar counting bytes read, towards `total` when the input's size is known, or a
    /// spinner when it is not (standard input).
    pub fn bytes(label: &str, total: Option<u64>) -> Progress {
        match total {
            Some(len) => Progress::new(
                label,
                Some(len),
                "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({eta})",
            ),
            None => Progress::new(label, None, "{msg:>10} {spinner} {bytes}"),
        }
    }

    fn new(label: &str, len: Option<u64>, template: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = match len {
            Some(len) => ProgressBar::new(len),
            None => ProgressBar::new_spinner(),
        };
        // The templates are constants; should one not parse, a plain bar is still a bar.
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    /// Records `done` out of `total` items.
    pub fn items_done(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Records `done` bytes read.
    pub fn bytes_done(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Removes the bar, leaving the terminal as it was.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    // A command that fails part way must not leave a bar drawn over its error message.
    fn drop(&mut self) {
        self.finish();
    }
}
