//! Writing to stdout. `println!` panics when the reader has gone (`drover
//! status shop | head -1`); the commands write through [`line`] instead,
//! which exits quietly as Unix tools do when their pipe closes.

use std::io::Write;

/// The exit code of a command whose stdout reader went away: what a shell
/// reports for a process killed by SIGPIPE (128 + 13), as `cat big | head`.
pub const CLOSED_PIPE_EXIT: i32 = 141;

/// Writes one line to stdout; exits quietly if stdout is a closed pipe.
pub fn line(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        exit_on_write_error(&e);
    }
}

/// Writes text as it is (no newline added).
pub fn text(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        exit_on_write_error(&e);
    }
}

fn exit_on_write_error(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_PIPE_EXIT);
    }
    // stdout is full or gone some other way: nothing sensible to print it to.
    let _ = writeln!(std::io::stderr(), "error: cannot write to stdout: {e}");
    std::process::exit(1);
}

/// `println!` for the commands' output.
#[macro_export]
#[doc(hidden)]
macro_rules! outln {
    () => { $crate::cli::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::output::line(format_args!($($arg)*)) };
}

/// Prints a value as pretty JSON.
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) {
    line(format_args!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}
