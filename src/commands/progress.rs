//! Progress on long work (`bench`, `webhooks replay`, `keys rotate`): a bar on stderr for a
//! person at a terminal; nothing at all when stderr is not a terminal (a pipe, a log, CI) or
//! with `--json`, so what a program reads never holds it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar; every method is a no-op when it is not shown.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `total` steps labelled `what`, shown only on a terminal without `--json`.
    pub fn new(total: u64, what: &str, json: bool) -> Progress {
        let bar = if !json && std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Progress { bar }
    }

    /// Whether the bar is drawn (a terminal, no `--json`); otherwise a caller prints lines.
    pub fn shown(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// `n` more steps done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Renames the step under way (`re-encrypting webhook secrets`).
    pub fn step(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    /// Removes the bar, leaving the terminal as it was for the lines that follow.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An early return (an error) must not leave a half-drawn bar above its message.
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}
