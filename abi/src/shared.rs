//! Process-wide state shared by every VM: shared data (with CAS), shared queues and metrics
//! (docs/abi.md#shared-data to #metrics). Keyed by `vm_id`, not by module or config, so it survives reloads.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;

use crate::types::{MetricType, Status};

/// Locks, ignoring poisoning: the data behind these locks stays consistent because no code
/// path panics while holding them.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// All shared state of one runtime.
#[derive(Default)]
pub struct Shared {
    /// Key-value store.
    pub data: SharedData,
    /// Queues.
    pub queues: SharedQueues,
    /// Metrics.
    pub metrics: Metrics,
}

/// `(vm_id, key)`.
type DataKey = (String, Vec<u8>);

/// The shared key-value store: per `vm_id`, key → (value, CAS).
#[derive(Default)]
pub struct SharedData {
    map: Mutex<HashMap<DataKey, (Bytes, u32)>>,
    cas: AtomicU32,
}

impl SharedData {
    /// The value and CAS of `key` under `vm_id`.
    pub fn get(&self, vm_id: &str, key: &[u8]) -> Option<(Bytes, u32)> {
        lock(&self.map).get(&(vm_id.to_owned(), key.to_vec())).cloned()
    }

    /// Writes `value` if `cas` is 0, the key is absent, or `cas` matches; the entry gets a new
    /// CAS from one counter shared by all keys (never 0).
    pub fn set(&self, vm_id: &str, key: &[u8], value: Bytes, cas: u32) -> Status {
        let mut map = lock(&self.map);
        let slot = map.entry((vm_id.to_owned(), key.to_vec()));
        let new_cas = self.next_cas();
        match slot {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if cas != 0 && e.get().1 != cas {
                    return Status::CasMismatch;
                }
                e.insert((value, new_cas));
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((value, new_cas));
            }
        }
        Status::Ok
    }

    fn next_cas(&self) -> u32 {
        loop {
            let v = self.cas.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if v != 0 {
                return v;
            }
        }
    }
}

/// Events for a VM instance that arrive from other threads (queue notifications). The owner
/// drains them on the instance's own thread.
#[derive(Default)]
pub struct Inbox {
    events: Mutex<VecDeque<(u32, u32)>>,
    waker: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl Inbox {
    /// Sets the function called after an event is posted (the proxy wakes the owning thread).
    pub fn set_waker(&self, waker: Arc<dyn Fn() + Send + Sync>) {
        *lock(&self.waker) = Some(waker);
    }

    pub(crate) fn post(&self, root: u32, token: u32) {
        lock(&self.events).push_back((root, token));
        self.wake();
    }

    /// Calls the waker: the VM has root-context work (a notification, a re-armed timer).
    pub(crate) fn wake(&self) {
        let waker = lock(&self.waker).clone();
        if let Some(w) = waker {
            w();
        }
    }

    /// Takes the pending `(root_id, queue token)` notifications.
    pub fn take(&self) -> Vec<(u32, u32)> {
        lock(&self.events).drain(..).collect()
    }

    /// True when notifications are waiting.
    pub fn has_events(&self) -> bool {
        !lock(&self.events).is_empty()
    }
}

struct Queue {
    items: VecDeque<Bytes>,
    /// The last registrant: its root context is told about new items.
    registrant: Option<(Weak<Inbox>, u32)>,
}

/// Shared queues: `(vm_id, name)` → FIFO, addressed by global tokens starting at 1.
#[derive(Default)]
pub struct SharedQueues {
    inner: Mutex<QueuesInner>,
}

#[derive(Default)]
struct QueuesInner {
    by_name: HashMap<(String, Vec<u8>), u32>,
    queues: HashMap<u32, Queue>,
    next: u32,
}

impl SharedQueues {
    /// Creates the queue or returns its token; the caller becomes the one notified.
    pub(crate) fn register(&self, vm_id: &str, name: &[u8], inbox: &Arc<Inbox>, root: u32) -> u32 {
        let mut g = lock(&self.inner);
        let key = (vm_id.to_owned(), name.to_vec());
        let token = match g.by_name.get(&key) {
            Some(t) => *t,
            None => {
                g.next += 1;
                let t = g.next;
                g.by_name.insert(key, t);
                g.queues.insert(t, Queue { items: VecDeque::new(), registrant: None });
                t
            }
        };
        if let Some(q) = g.queues.get_mut(&token) {
            q.registrant = Some((Arc::downgrade(inbox), root));
        }
        token
    }

    /// The token of an existing queue.
    pub fn resolve(&self, vm_id: &str, name: &[u8]) -> Option<u32> {
        lock(&self.inner).by_name.get(&(vm_id.to_owned(), name.to_vec())).copied()
    }

    /// Appends and notifies the registrant (never inline: it is posted to its inbox).
    pub fn enqueue(&self, token: u32, value: Bytes) -> Status {
        let notify = {
            let mut g = lock(&self.inner);
            let Some(q) = g.queues.get_mut(&token) else {
                return Status::NotFound;
            };
            q.items.push_back(value);
            q.registrant.as_ref().and_then(|(inbox, root)| Some((inbox.upgrade()?, *root)))
        };
        if let Some((inbox, root)) = notify {
            inbox.post(root, token);
        }
        Status::Ok
    }

    /// Pops the oldest item: NOT_FOUND for an unknown token, EMPTY when there is none.
    pub fn dequeue(&self, token: u32) -> Result<Bytes, Status> {
        let mut g = lock(&self.inner);
        let q = g.queues.get_mut(&token).ok_or(Status::NotFound)?;
        q.items.pop_front().ok_or(Status::Empty)
    }
}

/// One filter-defined metric, shared by every VM that defines the same name and type.
#[derive(Debug)]
pub struct Metric {
    /// The name the filter gave.
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
    value: AtomicI64,
    histogram: Mutex<Histogram>,
}

/// Histogram samples in Prometheus-style cumulative buckets.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Count per bucket of [`HISTOGRAM_BOUNDS`], plus one for +Inf.
    pub buckets: Vec<u64>,
    /// Sum of all samples.
    pub sum: u64,
    /// Number of samples.
    pub count: u64,
}

/// Upper bounds of the histogram buckets (Envoy's default bucket set).
pub const HISTOGRAM_BOUNDS: [u64; 19] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000,
    3_600_000, 10_000_000,
];

impl Metric {
    fn new(name: String, kind: MetricType) -> Self {
        Self { name, kind, value: AtomicI64::new(0), histogram: Mutex::new(Histogram::default()) }
    }

    /// Current value of a counter or gauge.
    pub fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// A copy of a histogram's samples.
    pub fn histogram(&self) -> Histogram {
        lock(&self.histogram).clone()
    }

    /// `proxy_increment_metric`.
    pub(crate) fn increment(&self, offset: i64) -> Status {
        match self.kind {
            MetricType::Counter if offset <= 0 => Status::BadArgument,
            MetricType::Counter | MetricType::Gauge => {
                self.value.fetch_add(offset, Ordering::Relaxed);
                Status::Ok
            }
            MetricType::Histogram => Status::BadArgument,
        }
    }

    /// `proxy_record_metric`: a counter adds, a gauge sets, a histogram records.
    pub(crate) fn record(&self, v: u64) -> Status {
        match self.kind {
            MetricType::Counter => {
                self.value.fetch_add(v as i64, Ordering::Relaxed);
            }
            MetricType::Gauge => self.value.store(v as i64, Ordering::Relaxed),
            MetricType::Histogram => {
                let mut h = lock(&self.histogram);
                if h.buckets.is_empty() {
                    h.buckets = vec![0; HISTOGRAM_BOUNDS.len() + 1];
                }
                let i = HISTOGRAM_BOUNDS.iter().position(|b| v <= *b).unwrap_or(HISTOGRAM_BOUNDS.len());
                h.buckets[i] += 1;
                h.sum = h.sum.saturating_add(v);
                h.count += 1;
            }
        }
        Status::Ok
    }
}

/// All filter-defined metrics, by (name, type).
#[derive(Default)]
pub struct Metrics {
    map: Mutex<HashMap<(String, u32), Arc<Metric>>>,
    defined: AtomicU64,
}

impl Metrics {
    /// Finds or creates the metric.
    pub(crate) fn define(&self, name: &str, kind: MetricType) -> Arc<Metric> {
        self.defined.fetch_add(1, Ordering::Relaxed);
        lock(&self.map)
            .entry((name.to_owned(), kind as u32))
            .or_insert_with(|| Arc::new(Metric::new(name.to_owned(), kind)))
            .clone()
    }

    /// Every metric, sorted by name, for export.
    pub fn snapshot(&self) -> Vec<Arc<Metric>> {
        let mut v: Vec<_> = lock(&self.map).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version rules of proxy-wasm-cpp-host's `SharedData::set` (`src/shared_data.cc`),
    /// which filters build create-if-absent on (the rate-limit filter does).
    #[test]
    fn versions_are_checked_only_for_keys_that_exist() {
        let data = SharedData::default();
        assert_eq!(data.set("vm", b"k", Bytes::from_static(b"a"), u32::MAX), Status::Ok, "absent: any version creates");
        let (_, v1) = data.get("vm", b"k").unwrap();
        assert_ne!(v1, 0);
        assert_eq!(data.set("vm", b"k", Bytes::from_static(b"b"), u32::MAX), Status::CasMismatch);
        assert_eq!(data.set("vm", b"k", Bytes::from_static(b"b"), v1), Status::Ok);
        let (value, v2) = data.get("vm", b"k").unwrap();
        assert_eq!((&value[..], v2 != v1), (&b"b"[..], true));
        assert_eq!(data.set("vm", b"k", Bytes::from_static(b"c"), 0), Status::Ok, "0 writes unconditionally");
    }
}
