//! How many VM instances the process's address-space limit (`RLIMIT_AS`, `ulimit -v`) leaves
//! room for. Wasmtime reserves the whole 32-bit space of a linear memory up front (4 GiB,
//! plus guard pages) on 64-bit hosts, so a limit that is plenty for the memory weir uses can
//! still refuse VMs.

/// Address space one VM instance reserves: 4 GiB for its memory and Wasmtime's 32 MiB guard.
const PER_INSTANCE: u64 = (4 << 30) + (32 << 20);

/// Address space kept for the rest of the process (code, heaps, thread stacks).
const PROCESS: u64 = 1 << 30;

/// How many instances fit; `None` when there is no limit.
pub fn instances_that_fit() -> Option<usize> {
    limit_bytes().map(|limit| (limit.saturating_sub(PROCESS) / PER_INSTANCE) as usize)
}

/// The limit in MiB, when there is one.
pub fn limit_mib() -> Option<u64> {
    limit_bytes().map(|limit| limit / (1 << 20))
}

fn limit_bytes() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    (known && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}
