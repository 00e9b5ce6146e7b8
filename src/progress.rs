//! Progress bars for long reads: shown on stderr only when stdout is a terminal and the work is large.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this many events no bar is drawn.
pub const LARGE: u64 = 50_000;

/// A bar over `total` events, or a hidden one when it would only be noise.
pub fn events_bar(total: u64, message: &'static str) -> ProgressBar {
    if total < LARGE || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message);
    bar
}
