//! Errors of loading a module, starting a VM, and failures while a VM runs.

use std::fmt;
use std::sync::Arc;

/// Why a module cannot be loaded. Each variant names the item at fault.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    /// The bytes are not a WebAssembly core module.
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    /// Wasmtime refused the module (validation or compilation).
    #[error("invalid WebAssembly module")]
    Invalid(#[source] Cause),
    /// No `proxy_abi_version_*` export.
    #[error(
        "missing or unknown Proxy-Wasm ABI version: the module exports none of proxy_abi_version_0_1_0, \
         proxy_abi_version_0_2_0, proxy_abi_version_0_2_1 (is it built with a Proxy-Wasm SDK?)"
    )]
    NoAbiVersion,
    /// A required export is missing.
    #[error("missing export `{0}`")]
    MissingExport(&'static str),
    /// Neither `malloc` nor `proxy_on_memory_allocate` is exported.
    #[error(
        "missing allocator: the module exports neither `malloc` nor `proxy_on_memory_allocate` with type (i32) -> i32"
    )]
    MissingAllocator,
    /// A callback export has the wrong type for the module's ABI version.
    #[error("export `{name}` has type {found}, but ABI {abi} expects {expected}")]
    BadExportSignature {
        /// The export.
        name: String,
        /// What ABI version the module declared.
        abi: crate::AbiVersion,
        /// Expected wasm type.
        expected: String,
        /// Actual wasm type.
        found: String,
    },
    /// The module imports something weir does not provide (for its ABI version).
    #[error("unknown import `{module}.{name}`: weir does not provide it{hint}")]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// Why, when a reason is known (e.g. it belongs to another ABI version).
        hint: String,
    },
    /// An import exists but with another type.
    #[error("import `{module}.{name}` has the wrong type: {detail}")]
    ImportTypeMismatch {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// What differs.
        detail: String,
    },
    /// A configured limit is not possible.
    #[error("invalid limits: {0}")]
    Limits(String),
    /// The engine could not be built.
    #[error("the wasm engine could not be built")]
    Engine(#[source] Cause),
}

/// An error from Wasmtime kept whole, with its own chain of causes, and shareable so the
/// errors that carry it stay `Clone`. Its `Display` is the outermost message; [`Chain`] shows
/// the rest.
#[derive(Debug, Clone)]
pub struct Cause(Arc<wasmtime::Error>);

impl Cause {
    pub(crate) fn new(e: wasmtime::Error) -> Self {
        Self(Arc::new(e))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        (**self.0).source()
    }
}

/// Two causes are equal when they say the same thing (tests compare errors).
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Chain(self).to_string() == Chain(other).to_string()
    }
}

impl Eq for Cause {}

/// An error and each of its causes on one line, `outer: cause: root cause`, as logs and
/// configuration errors show them.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// Why a VM or a plugin could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// Instantiation failed (e.g. no free instance slot).
    #[error("instantiating the module failed")]
    Instantiate(#[source] Cause),
    /// The start function (`_initialize`, `main`, `_start`) trapped.
    #[error("the module's start function failed: {0}")]
    StartFunction(Failure),
    /// `proxy_on_context_create`, `proxy_on_vm_start` or `proxy_on_configure` trapped.
    #[error("plugin `{plugin}`: {callback} failed: {failure}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The callback.
        callback: &'static str,
        /// The trap.
        failure: Failure,
    },
    /// `proxy_on_vm_start` returned false.
    #[error("plugin `{plugin}`: proxy_on_vm_start returned false (the filter refused its VM configuration{})", reason_suffix(.reason))]
    VmStartRefused {
        /// The plugin.
        plugin: String,
        /// The last warning or error it logged in the callback.
        reason: Option<String>,
    },
    /// `proxy_on_configure` returned false.
    #[error("plugin `{plugin}`: proxy_on_configure returned false (the filter refused its configuration{})", reason_suffix(.reason))]
    ConfigureRefused {
        /// The plugin.
        plugin: String,
        /// The last warning or error it logged in the callback.
        reason: Option<String>,
    },
    /// The VM failed earlier and is not usable.
    #[error("the VM has failed: {0}")]
    Failed(Failure),
}

/// How a call into a VM went wrong (the trap classification of docs/abi.md#failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// `unreachable` executed: a Rust panic, an AssemblyScript abort, a Go panic.
    Unreachable,
    /// Out-of-bounds memory or table access.
    OutOfBounds,
    /// The callback ran past its CPU deadline.
    Deadline,
    /// The VM tried to grow its memory past its limit.
    MemoryLimit,
    /// The wasm stack overflowed.
    StackOverflow,
    /// The module called WASI `proc_exit`.
    Exit,
    /// A hostcall that is not allowed at that point (e.g. during `_initialize`).
    Restricted,
    /// Any other trap (division by zero, bad indirect call, …).
    Other,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 8] = [
        Self::Unreachable,
        Self::OutOfBounds,
        Self::Deadline,
        Self::MemoryLimit,
        Self::StackOverflow,
        Self::Exit,
        Self::Restricted,
        Self::Other,
    ];

    /// The kind as metrics and logs label it (`memorylimit`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::OutOfBounds => "outofbounds",
            Self::Deadline => "deadline",
            Self::MemoryLimit => "memorylimit",
            Self::StackOverflow => "stackoverflow",
            Self::Exit => "exit",
            Self::Restricted => "restricted",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "unreachable (the filter panicked or aborted)",
            Self::OutOfBounds => "out-of-bounds memory access",
            Self::Deadline => "CPU deadline exceeded",
            Self::MemoryLimit => "memory limit exceeded",
            Self::StackOverflow => "stack overflow",
            Self::Exit => "the filter called proc_exit",
            Self::Restricted => "restricted hostcall",
            Self::Other => "trap",
        })
    }
}

/// A classified trap with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The class.
    pub kind: FailureKind,
    /// Wasmtime's description (with the wasm backtrace when there is one).
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Failure {}

/// Marker error a host function returns to trap the guest for a known reason.
#[derive(Debug)]
pub(crate) struct HostTrap {
    pub kind: FailureKind,
    pub message: String,
}

impl fmt::Display for HostTrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostTrap {}

impl Failure {
    /// Classifies a wasmtime error from a guest call.
    pub(crate) fn classify(err: &wasmtime::Error, memory_limit_hit: bool) -> Self {
        let message = format!("{err:?}");
        if let Some(h) = err.downcast_ref::<HostTrap>() {
            return Self { kind: h.kind, message };
        }
        if memory_limit_hit {
            return Self { kind: FailureKind::MemoryLimit, message };
        }
        let kind = match err.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::UnreachableCodeReached) => FailureKind::Unreachable,
            Some(wasmtime::Trap::MemoryOutOfBounds | wasmtime::Trap::TableOutOfBounds) => FailureKind::OutOfBounds,
            Some(wasmtime::Trap::Interrupt) => FailureKind::Deadline,
            Some(wasmtime::Trap::StackOverflow) => FailureKind::StackOverflow,
            _ => FailureKind::Other,
        };
        Self { kind, message }
    }
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason {
        Some(r) => format!(": {r}"),
        None => "; it logged no reason".into(),
    }
}
