//! How much of a memory region is in RAM, from the kernel's page table (`mincore(2)`).
//!
//! Written here because no maintained crate wraps `mincore` for a range the caller does not
//! own; `libc` gives the call. `mincore` only reads the page table: it never touches the
//! pages, so a region that was unmapped or reused meanwhile gives an error or a count, never
//! a fault.

/// Resident bytes of `[base, base + len)`; 0 when the range is not mapped.
pub(crate) fn resident_bytes(base: usize, len: usize) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    if base == 0 || len == 0 || !base.is_multiple_of(page) {
        return 0;
    }
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `vec` has one byte per page of the range; mincore reads the page table only and
    // fails with ENOMEM (checked) when part of the range is not mapped.
    let rc = unsafe { libc::mincore(base as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    vec.iter().filter(|b| *b & 1 == 1).count() as u64 * page as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn touched_pages_are_resident_and_unmapped_ranges_count_nothing() {
        let len = 64 * 4096;
        let mut block = vec![0u8; len + 4096];
        let base = (block.as_mut_ptr() as usize).next_multiple_of(4096);
        // SAFETY: `base..base + len` lies inside `block`.
        unsafe { std::ptr::write_bytes(base as *mut u8, 1, 4096 * 8) };
        let resident = super::resident_bytes(base, 4096 * 8);
        assert_eq!(resident, 4096 * 8, "written pages are in RAM");
        assert_eq!(super::resident_bytes(0, len), 0);
        drop(block);
    }
}
