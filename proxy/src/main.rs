//! The `weir` binary: a Pingora reverse proxy running Proxy-Wasm filter chains.

use std::process::ExitCode;

use clap::Parser;
use weir::{cli, logging, server};

/// mimalloc instead of glibc's allocator: weir allocates per request (headers, the filters'
/// views of them, log lines), and glibc's malloc and free cost several times more instructions
/// per call (bench/REPORT.md measures both).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    logging::log_panics();
    match &cli.command {
        Some(cli::Command::ShowQuickstart) => {
            print!("{}", server::QUICKSTART);
            return ExitCode::SUCCESS;
        }
        Some(cli::Command::Inspect { file }) => {
            let (report, loads) = weir::inspect::inspect(file);
            print!("{report}");
            return if loads { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        Some(cli::Command::Probe { admin }) => {
            return match weir::lifecycle::probe(*admin) {
                Ok(()) => ExitCode::SUCCESS,
                Err(why) => {
                    eprintln!("weir: not ready: {why}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(cli::Command::Completions { shell }) => {
            cli::completions(*shell, &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(cli::Command::Man) => {
            return match cli::man(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("weir: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    match server::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {}", weir_abi::Chain(&e));
            ExitCode::FAILURE
        }
    }
}
