//! The `weir` binary: a Pingora reverse proxy running Proxy-Wasm filter chains.

mod admin;
mod builtin;
mod callout;
mod cli;
mod clusters;
mod config;
mod convert;
mod demo;
mod generation;
mod logging;
mod metrics;
mod routes;
mod server;
mod service;
mod state;
mod vmtasks;

use std::process::ExitCode;

use clap::Parser;

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
