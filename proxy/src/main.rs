//! The `weir` binary: a Pingora reverse proxy running Proxy-Wasm filter chains.

use std::process::ExitCode;

use clap::Parser;
use weir::{cli, logging, server};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    if let Some(cli::Command::ShowQuickstart) = cli.command {
        print!("{}", server::QUICKSTART);
        return ExitCode::SUCCESS;
    }
    match server::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
