//! Why weir could not start: what it was doing, with the system's or library's error kept as
//! the source, so `main` prints the whole chain (`weir: cannot listen on …: Address already in
//! use`).

use std::net::SocketAddr;

use crate::config::ConfigError;

/// A startup failure, for the user.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{}", invalid(.0))]
    Config(Vec<ConfigError>),
    #[error("cannot resolve the configuration path")]
    ConfigPath(#[source] std::io::Error),
    #[error("cannot start the wasm runtime")]
    Runtime(#[source] weir_abi::LoadError),
    #[error(
        "the VM instance pool (server.vm_slots: {slots}) cannot reserve its address space under the \
         process's address-space limit (RLIMIT_AS, `ulimit -v`) of {limit_mib} MiB: each slot reserves \
         about 4 GiB of address space (not memory). Remove the limit (`ulimit -v unlimited`; \
         `LimitAS=infinity` under systemd)"
    )]
    AddressSpace { slots: u32, limit_mib: u64, source: weir_abi::LoadError },
    #[error("TLS for listener {0}")]
    Tls(SocketAddr, #[source] Box<pingora::Error>),
    #[error("cannot listen on {addr} (the {what})")]
    Listen { addr: SocketAddr, what: &'static str, source: std::io::Error },
    #[error("cannot reserve a port for {0}")]
    Reserve(SocketAddr, #[source] std::io::Error),
    #[error("cannot write the {what} {path}")]
    Write { what: &'static str, path: String, source: std::io::Error },
    #[error("demo origin `{0}` is not an address")]
    DemoAddress(String, #[source] std::net::AddrParseError),
    #[error("cannot start the demo origin on {0}")]
    Demo(SocketAddr, #[source] std::io::Error),
}

impl StartupError {
    /// The runtime could not start: when the VM pool's slots do not fit the address-space
    /// limit (the pool reserves address space for every slot up front), the limit is the
    /// reason, so the error names it and what to set; any other failure is shown as it is.
    pub fn runtime(e: weir_abi::LoadError, slots: u32) -> Self {
        let too_small = crate::address_space::instances_that_fit().is_some_and(|fits| slots as usize > fits);
        match crate::address_space::limit_mib() {
            Some(limit_mib) if slots > 0 && too_small => StartupError::AddressSpace { slots, limit_mib, source: e },
            _ => StartupError::Runtime(e),
        }
    }
}

impl From<Vec<ConfigError>> for StartupError {
    fn from(errors: Vec<ConfigError>) -> Self {
        StartupError::Config(errors)
    }
}

/// `the configuration is invalid (2 problems):` and one indented line per problem.
fn invalid(errors: &[ConfigError]) -> String {
    let mut s =
        format!("the configuration is invalid ({} problem{}):", errors.len(), if errors.len() == 1 { "" } else { "s" });
    for e in errors {
        s.push_str(&format!("\n  {e}"));
    }
    s
}
