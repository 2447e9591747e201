//! Checked access to a guest's linear memory (docs/abi.md#memory-checks and #returning-data).
//!
//! Every pointer and length comes from the guest: a range outside its memory gives
//! INVALID_MEMORY_ACCESS, never a trap and never a host panic. Data handed to the guest is
//! placed in memory the guest's own allocator returned, with exactly the size needed.

use wasmtime::Caller;

use crate::host::HostState;
use crate::types::Status;

/// The `(offset, len)` range as `usize`, if it lies inside a memory of `size` bytes.
/// `(0, 0)` is a valid empty range.
pub(crate) fn range(size: usize, ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize)?;
    (end <= size).then_some(start..end)
}

/// Copies `len` bytes at `ptr` out of the guest.
pub(crate) fn read(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let memory = caller.data().guest.memory.ok_or(Status::InvalidMemoryAccess)?;
    let data = memory.data(&*caller);
    let r = range(data.len(), ptr, len).ok_or(Status::InvalidMemoryAccess)?;
    Ok(data[r].to_vec())
}

/// The longest name a guest may pass (a cluster, a shared-data key, a queue, a metric, a
/// `vm_id`): the host hashes, decodes and keeps names, so their size bounds its work and
/// memory. Longer ones are refused with `BAD_ARGUMENT` (after the range check).
pub(crate) const MAX_NAME: i32 = 4096;

/// Copies a name from guest memory: [`read`], refusing one longer than [`MAX_NAME`].
pub(crate) fn read_name(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    check_out(caller, &[(ptr, len as u32 as usize)])?;
    if len > MAX_NAME {
        return Err(Status::BadArgument);
    }
    read(caller, ptr, len)
}

/// Runs `f` with the guest bytes at `ptr..ptr+len` and the host state, without copying.
pub(crate) fn with_slice<R>(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&[u8], &mut HostState) -> R,
) -> Result<R, Status> {
    let memory = caller.data().guest.memory.ok_or(Status::InvalidMemoryAccess)?;
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    let r = range(data.len(), ptr, len).ok_or(Status::InvalidMemoryAccess)?;
    Ok(f(&data[r], state))
}

/// Checks that `n` output slots of 4 bytes each are writable, before anything is allocated.
pub(crate) fn check_out(caller: &Caller<'_, HostState>, slots: &[(i32, usize)]) -> Result<(), Status> {
    let memory = caller.data().guest.memory.ok_or(Status::InvalidMemoryAccess)?;
    let size = memory.data_size(caller);
    for &(ptr, width) in slots {
        range(size, ptr, width as i32).ok_or(Status::InvalidMemoryAccess)?;
    }
    Ok(())
}

/// Writes raw bytes at `ptr`.
pub(crate) fn write(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let memory = caller.data().guest.memory.ok_or(Status::InvalidMemoryAccess)?;
    let data = memory.data_mut(&mut *caller);
    let r = range(data.len(), ptr, bytes.len() as i32).ok_or(Status::InvalidMemoryAccess)?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32 at `ptr`.
pub(crate) fn write_u32(caller: &mut Caller<'_, HostState>, ptr: i32, v: u32) -> Result<(), Status> {
    write(caller, ptr, &v.to_le_bytes())
}

/// Writes a little-endian u64 at `ptr`.
pub(crate) fn write_u64(caller: &mut Caller<'_, HostState>, ptr: i32, v: u64) -> Result<(), Status> {
    write(caller, ptr, &v.to_le_bytes())
}

/// Hands `data` to the guest: allocates exactly `data.len()` bytes with the guest allocator,
/// copies, then writes the pointer and the size to the two out-slots. Empty data writes 0/0
/// and allocates nothing.
///
/// # Errors
///
/// `Ok(Err(status))` for bad out-slots or an allocator that returned 0 or an out-of-range
/// block; `Err(trap)` when the allocator itself trapped.
pub(crate) fn hand_out(
    caller: &mut Caller<'_, HostState>,
    data: &[u8],
    ret_ptr: i32,
    ret_len: i32,
) -> wasmtime::Result<Result<(), Status>> {
    if let Err(s) = check_out(caller, &[(ret_ptr, 4), (ret_len, 4)]) {
        return Ok(Err(s));
    }
    let ptr = if data.is_empty() {
        0
    } else {
        match allocate(caller, data.len())? {
            Ok(p) => p,
            Err(s) => return Ok(Err(s)),
        }
    };
    if !data.is_empty()
        && let Err(s) = write(caller, ptr, data)
    {
        return Ok(Err(s));
    }
    Ok(write_u32(caller, ret_ptr, ptr as u32).and_then(|()| write_u32(caller, ret_len, data.len() as u32)))
}

/// Calls the guest allocator for `size` bytes.
pub(crate) fn allocate(caller: &mut Caller<'_, HostState>, size: usize) -> wasmtime::Result<Result<i32, Status>> {
    let Some(alloc) = caller.data().guest.alloc.clone() else {
        return Ok(Err(Status::InvalidMemoryAccess));
    };
    let Ok(size) = i32::try_from(size) else {
        return Ok(Err(Status::InvalidMemoryAccess));
    };
    let previous = std::mem::replace(&mut caller.data_mut().frame.in_allocator, true);
    let result = alloc.call(&mut *caller, size);
    caller.data_mut().frame.in_allocator = previous;
    let ptr = result?;
    if ptr == 0 {
        return Ok(Err(Status::InvalidMemoryAccess));
    }
    let memory = caller.data().guest.memory.ok_or(Status::InvalidMemoryAccess);
    let fits = memory.is_ok_and(|m| range(m.data_size(&*caller), ptr, size).is_some());
    Ok(if fits { Ok(ptr) } else { Err(Status::InvalidMemoryAccess) })
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert_eq!(range(10, 0, 0), Some(0..0));
        assert_eq!(range(10, 10, 0), Some(10..10));
        assert_eq!(range(10, 8, 2), Some(8..10));
        assert_eq!(range(10, 8, 3), None);
        assert_eq!(range(10, -16, 16), None);
        assert_eq!(range(usize::MAX, -1, -1), Some(0xFFFF_FFFF..0x1_FFFF_FFFE));
        assert_eq!(range(10, 11, 0), None);
    }
}
