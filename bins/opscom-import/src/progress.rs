//! Progress bars for interactive runs (`once`, `validate` on a terminal); the service shows none.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A row progress bar on stderr, for `once`.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar when stderr is a terminal; `None` otherwise (a service, a pipe, a log file).
    pub fn for_terminal() -> Option<Bar> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        Some(Bar { bar })
    }
}

impl opscom_pipeline::Progress for Bar {
    fn file_started(&self, name: &str, rows: u64) {
        self.bar.reset();
        self.bar.set_length(rows);
        self.bar.set_message(name.to_owned());
    }

    fn row_done(&self) {
        self.bar.inc(1);
    }

    fn file_finished(&self) {
        self.bar.finish_and_clear();
    }
}

/// A byte progress bar for reading a large file in `validate`, when stderr is a terminal.
pub fn bytes_bar(len: u64) -> Option<ProgressBar> {
    const LARGE: u64 = 8 << 20;
    if len < LARGE || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    Some(bar)
}
