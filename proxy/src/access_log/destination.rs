//! Where access-log lines go (`access_log.path`): stderr (the default), stdout, or a file
//! opened for appending and reopened on SIGUSR1, so logrotate can move it away and signal
//! (as nginx's `USR1`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// A destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    Stdout,
    File(PathBuf),
}

impl Destination {
    /// From `access_log.path` (`stderr`, `stdout` or a file, absolute).
    pub fn parse(path: &str, base: &std::path::Path) -> Self {
        match path {
            "stderr" => Self::Stderr,
            "stdout" => Self::Stdout,
            file => Self::File(base.join(file)),
        }
    }

    /// Opens a file destination once, to refuse one weir cannot write before it serves.
    ///
    /// # Errors
    ///
    /// The file cannot be opened for appending.
    pub fn check(&self) -> std::io::Result<()> {
        if let Self::File(path) = self {
            open(path)?;
        }
        Ok(())
    }
}

fn open(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

/// SIGUSR1 arrived: the writer reopens its file before its next write.
static REOPEN: AtomicBool = AtomicBool::new(false);

/// Catches SIGUSR1 from now on (its default action would end the process).
pub fn catch_sigusr1() {
    // SAFETY: the action only stores to an atomic, which is async-signal-safe.
    let registered = unsafe { signal_hook_registry::register(libc::SIGUSR1, || REOPEN.store(true, Ordering::Relaxed)) };
    if let Err(e) = registered {
        tracing::warn!(target: "weir::server", error = %e, "cannot catch SIGUSR1: the access log cannot be reopened");
    }
}

/// The writer's open destination.
pub struct Output {
    destination: Destination,
    file: Option<File>,
}

impl Output {
    /// Opens `destination` (a file that cannot be opened is reported, and lines go to stderr
    /// until a reopen succeeds).
    pub fn new(destination: Destination) -> Self {
        let mut output = Self { destination, file: None };
        output.reopen();
        output
    }

    fn reopen(&mut self) {
        if let Destination::File(path) = &self.destination {
            match open(path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::warn!(target: "weir::server", path = %path.display(), error = %e, "cannot open the access log; lines go to the file opened before, or stderr")
                }
            }
        }
    }

    /// Reopens the file when SIGUSR1 asked for it.
    pub fn reopen_if_asked(&mut self) {
        if REOPEN.swap(false, Ordering::Relaxed) {
            self.reopen();
            if let Destination::File(path) = &self.destination {
                tracing::info!(target: "weir::server", path = %path.display(), "access log reopened (SIGUSR1)");
            }
        }
    }

    /// Writes `bytes` whole.
    pub fn write_all(&mut self, bytes: &[u8]) {
        let _ = match (&self.destination, &mut self.file) {
            (Destination::Stdout, _) => std::io::stdout().lock().write_all(bytes),
            (Destination::File(_), Some(f)) => f.write_all(bytes),
            _ => std::io::stderr().lock().write_all(bytes),
        };
    }
}
