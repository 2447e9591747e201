//! Resource limits of one VM: a memory cap enforced by a wasmtime `ResourceLimiter`, and the
//! per-callback CPU deadline (enforced with epoch interruption in [`crate::vm`]).

use std::time::Duration;

/// Limits applied to each instance of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory one instance may have, in bytes. Default 64 MiB.
    pub memory_bytes: usize,
    /// Most wall time one request-path callback may run. Default 100 ms.
    pub callback_deadline: Duration,
    /// Most wall time start-up (`_initialize`, `on_vm_start`, `on_configure`) may run.
    /// Default 5 s.
    pub startup_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            callback_deadline: Duration::from_millis(100),
            startup_deadline: Duration::from_secs(5),
        }
    }
}

/// Refuses memory growth past the cap and remembers that it did, so the resulting trap can be
/// classified as "memory limit" rather than a generic abort.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    max: usize,
    pub hit: bool,
    /// This instance's memory, mirrored into its spec's totals.
    pub size: usize,
    /// Where the memory starts (0 until the instance exists), for resident-memory reports.
    base: usize,
    /// The key of this instance's region in its spec's stats.
    id: u64,
    stats: std::sync::Arc<crate::plugin::VmStats>,
}

static NEXT_LIMITER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl MemoryLimiter {
    pub(crate) fn new(max: usize, stats: std::sync::Arc<crate::plugin::VmStats>) -> Self {
        let id = NEXT_LIMITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { max, hit: false, size: 0, base: 0, id, stats }
    }

    /// Records where the instance's memory starts. Its base does not move when it grows:
    /// Wasmtime reserves the whole 32-bit space of a memory up front on 64-bit hosts (and the
    /// pooling allocator gives each slot a fixed place).
    pub(crate) fn set_base(&mut self, base: usize) {
        self.base = base;
        self.publish();
    }

    fn publish(&self) {
        if self.base != 0
            && let Ok(mut regions) = self.stats.regions.lock()
        {
            regions.insert(self.id, (self.base, self.size));
        }
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.stats.memory_bytes.fetch_sub(self.size as u64, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut regions) = self.stats.regions.lock() {
            regions.remove(&self.id);
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            wasmtime::bail!("memory limit of {} bytes exceeded (wanted {desired})", self.max);
        }
        // Growth is rare (a few times per instance), so keeping the totals exact is cheap.
        self.stats
            .memory_bytes
            .fetch_add(desired.saturating_sub(self.size) as u64, std::sync::atomic::Ordering::Relaxed);
        self.size = desired;
        self.publish();
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
