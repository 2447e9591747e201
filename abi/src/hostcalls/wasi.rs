//! The WASI preview-1 subset of docs/abi.md#wasi and #time, under both `wasi_snapshot_preview1` and
//! `wasi_unstable`: stdout/stderr to the filter log, clocks, random bytes, configured
//! environment variables, no arguments, `proc_exit` as a trap. No filesystem, no sockets:
//! everything else answers with a clean errno.

#![allow(unused_braces, reason = "rustfmt wraps some one-line hostcall bodies in braces")]

use super::Registrar;
use crate::error::{FailureKind, HostTrap};
use crate::host::HostState;
use crate::memory;
use crate::types::LogLevel;

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOENT: i32 = 44;
const NOSYS: i32 = 52;
const NOTSUP: i32 = 58;
const NOTCAPABLE: i32 = 76;

/// Largest `random_get` request (Envoy's limit).
const MAX_RANDOM: u32 = 64 << 10;
/// Most bytes one `fd_write` logs.
const MAX_LOG_WRITE: usize = 1 << 20;
/// Most vectors one `fd_write` takes (POSIX's `IOV_MAX` on Linux); more is EINVAL, as there.
const MAX_IOVS: i32 = 1024;

const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

const NAMES: &[&str] = &[
    "fd_write",
    "fd_read",
    "fd_seek",
    "fd_close",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "clock_res_get",
    "fd_advise",
    "fd_allocate",
    "fd_datasync",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_pwrite",
    "fd_readdir",
    "fd_renumber",
    "fd_sync",
    "fd_tell",
    "path_create_directory",
    "path_filestat_set_times",
    "path_link",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
    "random_get",
    "sched_yield",
    "poll_oneoff",
    "proc_exit",
    "path_open",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "path_filestat_get",
    "fd_filestat_get",
];

/// True for a WASI function name weir provides.
pub(super) fn is_wasi(name: &str) -> bool {
    NAMES.contains(&name)
}

type C<'a> = wasmtime::Caller<'a, HostState>;
type R = wasmtime::Result<i32>;

/// Registers `f` under both WASI module names, guarded like every hostcall.
macro_rules! wasi {
    ($r:expr, $name:literal, |$c:ident $(, $a:ident : $t:ty)*| $body:expr) => {
        for module in MODULES {
            $r.add(module, $name, |$c: C<'_>, $($a: $t),*| -> R {
                super::guard(&$c, $name)?;
                if !super::capability_allowed(&$c, $name) {
                    return Ok(NOTCAPABLE);
                }
                #[allow(unused_mut, unused_variables, reason = "some bodies do not use the caller")]
                let mut $c = $c;
                $body
            })?;
        }
    };
}

fn errno(r: Result<(), crate::types::Status>) -> i32 {
    if r.is_ok() { SUCCESS } else { FAULT }
}

fn fd_write(c: &mut C<'_>, fd: i32, iovs: i32, n: i32, ret: i32) -> R {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(BADF),
    };
    // Host code cannot be interrupted by the callback's deadline: its work is bounded here,
    // by the number of vectors (POSIX's IOV_MAX) and by the bytes a log line keeps, which are
    // the only ones copied. The write reports every byte as written, so the guest does not
    // retry what was dropped.
    if !(0..=MAX_IOVS).contains(&n) {
        return Ok(INVAL);
    }
    let Ok(vectors) = memory::read(c, iovs, n * 8) else {
        return Ok(FAULT);
    };
    let mut text = Vec::new();
    let mut written: u32 = 0;
    for iov in vectors.chunks_exact(8) {
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        if memory::check_out(c, &[(ptr, len as u32 as usize)]).is_err() {
            return Ok(FAULT);
        }
        let keep = (len as u32 as usize).min(MAX_LOG_WRITE - text.len());
        if keep > 0 {
            let Ok(chunk) = memory::read(c, ptr, keep as i32) else {
                return Ok(FAULT);
            };
            text.extend_from_slice(&chunk);
        }
        written = written.saturating_add(len as u32);
    }
    let line = text.strip_suffix(b"\n").unwrap_or(&text);
    super::log::emit(c.data_mut(), level, line);
    Ok(errno(memory::write_u32(c, ret, written)))
}

/// The configured variables as `KEY=VALUE\0` strings.
fn environ(c: &C<'_>) -> Vec<Vec<u8>> {
    c.data().spec.config.environment.iter().map(|(k, v)| format!("{k}={v}\0").into_bytes()).collect()
}

fn clock(id: i32) -> Option<u64> {
    match id {
        0 => Some(super::time::now_nanos()),
        1 => Some(monotonic_nanos()),
        _ => None,
    }
}

fn monotonic_nanos() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64 + 1
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    wasi!(r, "fd_write", |c, fd: i32, iovs: i32, n: i32, ret: i32| { fd_write(&mut c, fd, iovs, n, ret) });
    wasi!(r, "fd_read", |c, _fd: i32, _iovs: i32, _n: i32, _ret: i32| Ok(NOSYS));
    wasi!(r, "fd_seek", |c, _fd: i32, _off: i64, _whence: i32, _ret: i32| Ok(SUCCESS));
    wasi!(r, "fd_close", |c, _fd: i32| Ok(SUCCESS));
    wasi!(r, "fd_fdstat_get", |c, fd: i32, ret: i32| {
        if fd != 1 && fd != 2 {
            return Ok(BADF);
        }
        // filetype CHARACTER_DEVICE, no flags, rights FD_WRITE.
        let mut stat = [0u8; 24];
        stat[0] = 2;
        stat[8..16].copy_from_slice(&(1u64 << 6).to_le_bytes());
        Ok(errno(memory::write(&mut c, ret, &stat)))
    });
    wasi!(r, "fd_fdstat_set_flags", |c, _fd: i32, _flags: i32| Ok(NOSYS));
    wasi!(r, "fd_fdstat_set_rights", |c, _fd: i32, _base: i64, _inh: i64| Ok(NOSYS));
    wasi!(r, "environ_sizes_get", |c, ret_count: i32, ret_size: i32| {
        let env = environ(&c);
        let size: usize = env.iter().map(Vec::len).sum();
        Ok(errno(
            memory::write_u32(&mut c, ret_count, env.len() as u32)
                .and_then(|()| memory::write_u32(&mut c, ret_size, size as u32)),
        ))
    });
    wasi!(r, "environ_get", |c, ptrs: i32, buf: i32| {
        let mut at = buf;
        for (i, var) in environ(&c).iter().enumerate() {
            let slot = ptrs.wrapping_add((i * 4) as i32);
            if memory::write_u32(&mut c, slot, at as u32).and_then(|()| memory::write(&mut c, at, var)).is_err() {
                return Ok(FAULT);
            }
            at = at.wrapping_add(var.len() as i32);
        }
        Ok(SUCCESS)
    });
    wasi!(r, "args_sizes_get", |c, ret_count: i32, ret_size: i32| {
        Ok(errno(memory::write_u32(&mut c, ret_count, 0).and_then(|()| memory::write_u32(&mut c, ret_size, 0))))
    });
    wasi!(r, "args_get", |c, _argv: i32, _buf: i32| Ok(SUCCESS));
    wasi!(r, "clock_time_get", |c, id: i32, _precision: i64, ret: i32| {
        let Some(now) = clock(id) else {
            return Ok(NOTSUP);
        };
        Ok(errno(memory::write_u64(&mut c, ret, now)))
    });
    wasi!(r, "clock_res_get", |c, id: i32, ret: i32| {
        if clock(id).is_none() {
            return Ok(NOTSUP);
        }
        Ok(errno(memory::write_u64(&mut c, ret, 1)))
    });
    wasi!(r, "random_get", |c, buf: i32, len: i32| {
        let len = len as u32;
        if len > MAX_RANDOM {
            return Ok(INVAL);
        }
        let mut bytes = vec![0u8; len as usize];
        if getrandom::fill(&mut bytes).is_err() {
            return Ok(NOSYS);
        }
        Ok(errno(memory::write(&mut c, buf, &bytes)))
    });
    wasi!(r, "sched_yield", |c| Ok(SUCCESS));
    wasi!(r, "poll_oneoff", |c, _in: i32, _out: i32, _n: i32, ret: i32| Ok(errno(memory::write_u32(&mut c, ret, 0))));
    for module in MODULES {
        r.add(module, "proc_exit", |c: C<'_>, code: i32| -> wasmtime::Result<()> {
            super::guard(&c, "proc_exit")?;
            Err(wasmtime::Error::new(HostTrap { kind: FailureKind::Exit, message: format!("proc_exit({code})") }))
        })?;
    }
    wasi!(r, "path_open", |c,
                           _fd: i32,
                           _df: i32,
                           _p: i32,
                           _l: i32,
                           _of: i32,
                           _rb: i64,
                           _ri: i64,
                           _ff: i32,
                           _ret: i32| { Ok(NOENT) });
    wasi!(r, "fd_prestat_get", |c, _fd: i32, _ret: i32| Ok(BADF));
    wasi!(r, "fd_prestat_dir_name", |c, _fd: i32, _p: i32, _l: i32| Ok(BADF));
    wasi!(r, "path_filestat_get", |c, _fd: i32, _f: i32, _p: i32, _l: i32, _ret: i32| Ok(BADF));
    wasi!(r, "fd_filestat_get", |c, _fd: i32, _ret: i32| Ok(BADF));
    wasi!(r, "fd_advise", |c, _fd: i32, _o: i64, _l: i64, _a: i32| Ok(BADF));
    wasi!(r, "fd_allocate", |c, _fd: i32, _o: i64, _l: i64| Ok(BADF));
    wasi!(r, "fd_datasync", |c, _fd: i32| Ok(BADF));
    wasi!(r, "fd_filestat_set_size", |c, _fd: i32, _s: i64| Ok(BADF));
    wasi!(r, "fd_filestat_set_times", |c, _fd: i32, _a: i64, _m: i64, _f: i32| Ok(BADF));
    wasi!(r, "fd_pread", |c, _fd: i32, _i: i32, _n: i32, _o: i64, _ret: i32| Ok(BADF));
    wasi!(r, "fd_pwrite", |c, _fd: i32, _i: i32, _n: i32, _o: i64, _ret: i32| Ok(BADF));
    wasi!(r, "fd_readdir", |c, _fd: i32, _b: i32, _l: i32, _k: i64, _ret: i32| Ok(BADF));
    wasi!(r, "fd_renumber", |c, _fd: i32, _to: i32| Ok(BADF));
    wasi!(r, "fd_sync", |c, _fd: i32| Ok(BADF));
    wasi!(r, "fd_tell", |c, _fd: i32, _ret: i32| Ok(BADF));
    wasi!(r, "path_create_directory", |c, _fd: i32, _p: i32, _l: i32| Ok(BADF));
    wasi!(r, "path_filestat_set_times", |c, _fd: i32, _f: i32, _p: i32, _l: i32, _a: i64, _m: i64, _ff: i32| Ok(BADF));
    wasi!(r, "path_link", |c, _a: i32, _b: i32, _p: i32, _l: i32, _d: i32, _q: i32, _m: i32| Ok(BADF));
    wasi!(r, "path_readlink", |c, _fd: i32, _p: i32, _l: i32, _b: i32, _bl: i32, _ret: i32| Ok(BADF));
    wasi!(r, "path_remove_directory", |c, _fd: i32, _p: i32, _l: i32| Ok(BADF));
    wasi!(r, "path_rename", |c, _fd: i32, _p: i32, _l: i32, _d: i32, _q: i32, _m: i32| Ok(BADF));
    wasi!(r, "path_symlink", |c, _p: i32, _l: i32, _fd: i32, _q: i32, _m: i32| Ok(BADF));
    wasi!(r, "path_unlink_file", |c, _fd: i32, _p: i32, _l: i32| Ok(BADF));
    wasi!(r, "sock_accept", |c, _fd: i32, _f: i32, _ret: i32| Ok(NOTSUP));
    wasi!(r, "sock_recv", |c, _fd: i32, _i: i32, _n: i32, _f: i32, _rl: i32, _rf: i32| Ok(NOTSUP));
    wasi!(r, "sock_send", |c, _fd: i32, _i: i32, _n: i32, _f: i32, _ret: i32| Ok(NOTSUP));
    wasi!(r, "sock_shutdown", |c, _fd: i32, _how: i32| Ok(NOTSUP));
    Ok(())
}
