//! Command output on stdout. Rust's `println!` panics when the reader has gone away
//! (`stepwise events | head -1`); every command writes through [`outln!`] instead,
//! which turns a closed stdout into [`StdoutClosed`], and `main` ends the process
//! quietly on it, as `cat` or `grep` would.

use std::io::Write;

/// The reader of stdout went away: nothing more can be shown, nothing is wrong.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// What a shell reports for a writer that SIGPIPE ended (128 + 13), so a script with
/// `set -o pipefail` sees the same as with any other Unix tool.
pub const CLOSED_EXIT_CODE: u8 = 141;

/// Writes `args` and, when `newline`, a line end, to stdout.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                StdoutClosed.into()
            } else {
                anyhow::Error::new(e).context("cannot write to stdout")
            }
        })
}

/// Whether `error` is, or was caused by, a closed stdout.
pub fn is_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<StdoutClosed>())
}

/// `println!` that returns [`StdoutClosed`] (with `?`) instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!(""), true)?
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*), true)?
    };
}

/// `print!` that returns [`StdoutClosed`] (with `?`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*), false)?
    };
}

pub(crate) use {out, outln};
