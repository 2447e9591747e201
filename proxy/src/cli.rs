//! Command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// weir: an Envoy-compatible Proxy-Wasm filter runtime.
///
/// Without `-c`, weir runs its quick start: an embedded configuration with the four built-in
/// filters, in front of demo origins it starts itself.
#[derive(Debug, Parser)]
#[command(version, long_version = crate::build_info::long_version(), about, long_about = None)]
pub struct Cli {
    /// Configuration file (YAML).
    #[arg(short = 'c', long = "conf", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration (load every module, run every filter's on_configure) and exit:
    /// 0 when it is valid, 1 with the reasons otherwise.
    #[arg(short = 't', long = "test")]
    pub test: bool,
    /// Take over the listening sockets of a running weir (graceful binary upgrade); send the old
    /// process SIGQUIT.
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,
    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// What to do (default: run the proxy).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the embedded quick-start configuration.
    ShowQuickstart,
    /// Describe a .wasm module: ABI version, callbacks, imports (provided or not), memory, and
    /// whether weir will load it. Exits 1 when it will not.
    Inspect {
        /// The module.
        file: PathBuf,
    },
    /// Ask a running weir whether it is ready (`GET /ready` on its admin listener): exit 0 when
    /// it answers 200, 1 otherwise. A health check for images without curl (Docker's
    /// `HEALTHCHECK`).
    Probe {
        /// The admin listener's address.
        #[arg(default_value = "127.0.0.1:9901")]
        admin: std::net::SocketAddr,
    },
    /// Print a shell completion script (e.g. `weir completions bash >
    /// /etc/bash_completion.d/weir`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print weir's man page (roff; e.g. `weir man > /usr/share/man/man1/weir.1`).
    Man,
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "weir", out);
}

/// Writes the man page to `out`.
///
/// # Errors
///
/// Writing failed.
pub fn man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::Man::new(Cli::command()).render(out)
}
