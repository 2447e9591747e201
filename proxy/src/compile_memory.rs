//! Giving back the memory compiling modules used.
//!
//! Wasmtime compiles a module's functions on weir-abi's compile threads (in parallel), and
//! weir's allocator (mimalloc, `src/main.rs`) keeps the pages a thread freed in that thread's
//! heap until the thread allocates again, which an idle compile thread never does. Without
//! this, weir stayed at ~120 MB resident after compiling the quick start's four built-ins,
//! against ~37 MB when it read them from the module cache.

/// Returns to the system the free memory of every compile thread and of the caller. Cheap when
/// there is nothing to return; call it after compiling.
pub fn release() {
    weir_abi::on_compile_threads(collect);
    collect();
}

fn collect() {
    // SAFETY: `mi_collect` takes no pointers; it only frees and purges the calling thread's
    // free pages. Under another global allocator (the library's tests) mimalloc's heaps are
    // empty and it does nothing.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
