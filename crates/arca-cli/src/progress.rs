//! Progress bars on a terminal, nothing when output is piped.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(label: &str) -> Bar {
        let pb = if std::io::stderr().is_terminal() {
            let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb.set_message(label.to_string());
            pb
        } else {
            ProgressBar::hidden()
        };
        Bar(pb)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl arca_repo::Progress for Bar {
    fn set_total(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn inc(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
