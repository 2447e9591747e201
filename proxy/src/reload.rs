//! Live reload: build a new generation off the request path and publish it with one atomic
//! swap, or change nothing and report why. Triggered by `POST /reload` on the admin listener,
//! by SIGHUP, and by changes to the configuration file or a module it references.
//!
//! Requests keep the generation they started with; the next request, even on the same
//! keep-alive connection, gets the new one. Shared data, queues and filter metrics are keyed
//! by `vm_id` in the runtime, so they carry over. Listener, admin and server settings apply at
//! the next start (or binary upgrade).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::EventKind;

use crate::config::{self, Loaded};
use crate::state::State;

/// Quiet time after a file change before reloading, so an editor's several writes make one
/// reload.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Longest wait for quiet before reloading anyway.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// Rebuilds and publishes generations, one at a time.
pub struct Reloader {
    state: Arc<State>,
    /// The configuration file; `None` for the embedded quick start.
    path: Option<PathBuf>,
    running: tokio::sync::Mutex<()>,
}

/// What a generation is built from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The configuration file (or the embedded quick start), read again.
    File,
    /// The running generation's configuration, as it was read.
    Running,
}

/// Signalled when a module's optimized code is ready ([`optimized_code_ready`]).
static OPTIMIZED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells the reloader that a module's optimized code is ready, so that VMs on its baseline
/// code move to it ([`Reloader::on_optimized_code`]). A signal with nobody waiting is kept.
pub fn optimized_code_ready() {
    OPTIMIZED.notify_one();
}

/// A successful reload.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The published generation.
    pub generation: u64,
    /// How long building and validating took.
    pub took: Duration,
}

impl Reloader {
    /// A reloader of the configuration at `path`.
    pub fn new(state: Arc<State>, path: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self { state, path, running: tokio::sync::Mutex::new(()) })
    }

    /// Files whose change triggers a reload: the configuration and the modules it names.
    pub fn watched_files(&self) -> BTreeSet<PathBuf> {
        let mut files = BTreeSet::new();
        let Some(path) = &self.path else { return files };
        files.insert(absolute(path));
        let generation = self.state.current.load();
        let base = generation.loaded.base_dir();
        for p in generation.loaded.config.plugins.values() {
            if let Some(m) = &p.module {
                files.insert(absolute(&base.join(m)));
            }
        }
        files
    }

    /// Reloads: parse, compile (or take from the cache), validate every filter in a canary VM,
    /// then publish. On any error nothing changes.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming the file, line and field.
    pub async fn reload(&self, trigger: &str) -> Result<Reloaded, Vec<String>> {
        self.rebuild(trigger, Source::File).await
    }

    /// Builds a generation from `source` and publishes it, as [`Reloader::reload`] describes.
    async fn rebuild(&self, trigger: &str, source: Source) -> Result<Reloaded, Vec<String>> {
        let _one_at_a_time = self.running.lock().await;
        let started = Instant::now();
        let path = self.path.clone();
        let runtime = self.state.runtime.clone();
        let running = self.state.current.load_full();
        let built = tokio::task::spawn_blocking(move || -> Result<_, Vec<String>> {
            let loaded = match (source, &path) {
                (Source::Running, _) => Ok(running.loaded.clone()),
                (Source::File, Some(p)) => config::load(p),
                (Source::File, None) => config::parse(crate::server::QUICKSTART.to_owned(), None),
            };
            let mut loaded = loaded.map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            keep_process_settings(&mut loaded, &running.loaded);
            crate::generation::build(&runtime, loaded, Some(&running))
                .map_err(|e| e.iter().map(ToString::to_string).collect())
        })
        .await
        .unwrap_or_else(|e| Err(vec![format!("the reload task failed: {e}")]));
        match built {
            Ok(generation) => {
                let id = generation.id;
                self.state.publish(generation);
                self.state.metrics.reloads.with_label_values(&["ok"]).inc();
                let took = started.elapsed();
                tracing::info!(target: "weir::reload", trigger, generation = id, took_ms = took.as_millis() as u64, "configuration reloaded");
                Ok(Reloaded { generation: id, took })
            }
            Err(errors) => {
                self.state.metrics.reloads.with_label_values(&["error"]).inc();
                for e in &errors {
                    tracing::error!(target: "weir::reload", trigger, "reload refused, the running configuration stays: {e}");
                }
                Err(errors)
            }
        }
    }

    /// Moves VMs running baseline code to their module's optimized code once it is ready
    /// (`server.compiler: tiered`), forever: each time a module's background compile ends and
    /// the running generation has such VMs, it is built again from the same configuration, as
    /// a reload would (requests in flight finish on the VMs they started on).
    pub async fn on_optimized_code(self: Arc<Self>) {
        loop {
            OPTIMIZED.notified().await;
            let current = self.state.current.load_full();
            if current.plugins.values().any(|p| p.vm.behind_its_module()) {
                let _ = self.rebuild("optimized code ready", Source::Running).await;
            }
        }
    }

    /// Reloads on SIGHUP, forever.
    pub async fn on_sighup(self: Arc<Self>) {
        if EARLY_SIGHUP.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let _ = self.reload("SIGHUP during start-up").await;
        }
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!(target: "weir::reload", "cannot listen for SIGHUP");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = self.reload("SIGHUP").await;
        }
    }

    /// Starts watching the configuration and its modules (before the process reports ready, so
    /// no change is missed). `None` for the embedded quick start, or when watching fails.
    pub fn watch(&self) -> Option<FileWatch> {
        self.path.as_ref()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reading a file (as a reload does) must not trigger a reload.
            if let Ok(e) = event
                && matches!(e.kind, EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(_))
                && !matches!(e.kind, EventKind::Modify(notify::event::ModifyKind::Metadata(_)))
            {
                let _ = tx.send(Change { removed: matches!(e.kind, EventKind::Remove(_)), paths: e.paths });
            }
        });
        match watcher {
            Ok(w) => {
                let watch = FileWatch {
                    watcher: std::sync::Mutex::new(w),
                    rx: tokio::sync::Mutex::new(rx),
                    dirs: Default::default(),
                };
                watch.follow(&self.watched_files());
                Some(watch)
            }
            Err(e) => {
                tracing::warn!(target: "weir::reload", error = %e, "cannot watch the configuration files; reload with SIGHUP or POST /reload");
                None
            }
        }
    }

    /// Reloads when a watched file changes, forever.
    pub async fn on_file_change(self: Arc<Self>, watch: Arc<FileWatch>) {
        let mut rx = watch.rx.lock().await;
        let relevant = |files: &BTreeSet<PathBuf>, change: &Change| change.paths.iter().any(|p| is_watched(files, p));
        // The generation whose files are watched.
        let mut watched_for = self.state.current.load().id;
        let mut files = self.watched_files();
        let mut refollow = true;
        loop {
            // A directory that came back (say after `cargo clean` and a rebuild) is watched again;
            // a module that appeared while it was not watched counts as a change.
            let appeared = refollow && watch.follow(&files);
            if !appeared {
                let Some(change) = rx.recv().await else { return };
                watch.forget_removed(&change);
                if !relevant(&files, &change) {
                    // Only a change to a directory on the way to a watched file, or a reload
                    // by other means (its modules may be elsewhere), calls for watching again:
                    // other files in the same directories (a log written beside the
                    // configuration, line by line) cost a lookup each.
                    let running = self.state.current.load().id;
                    refollow = running != watched_for
                        || change.paths.iter().any(|p| files.iter().any(|f| f != p && f.starts_with(p)));
                    if running != watched_for {
                        files = self.watched_files();
                        watched_for = running;
                    }
                    continue;
                }
            }
            // Debounce: wait until the watched files have been quiet for a moment (other files
            // in the same directories, such as a log, do not count), but not forever.
            let first = Instant::now();
            let mut last = first;
            loop {
                let wait = DEBOUNCE.saturating_sub(last.elapsed());
                if wait.is_zero() || first.elapsed() > MAX_DEBOUNCE {
                    break;
                }
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(change)) => {
                        watch.forget_removed(&change);
                        if relevant(&files, &change) {
                            last = Instant::now();
                        }
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let _ = self.reload("file change").await;
            watched_for = self.state.current.load().id;
            files = self.watched_files();
            refollow = true;
        }
    }
}

/// What the watcher saw: paths created, changed or removed.
struct Change {
    removed: bool,
    paths: Vec<PathBuf>,
}

/// The file watcher and the changes it saw.
pub struct FileWatch {
    watcher: std::sync::Mutex<notify::RecommendedWatcher>,
    rx: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Change>>,
    /// Directories with a live watch.
    dirs: std::sync::Mutex<BTreeSet<PathBuf>>,
}

impl FileWatch {
    /// Watches the directory of each of `files`, or its closest existing ancestor while the
    /// directory is missing (editors and deploy tools replace files rather than write them in
    /// place, so directories are watched, not files). Returns true when a directory containing
    /// a watched file was newly watched while that file exists: it may have changed unseen.
    fn follow(&self, files: &BTreeSet<PathBuf>) -> bool {
        use notify::Watcher;
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let mut appeared = false;
        for file in files {
            let Some(dir) = file.parent() else { continue };
            let Some(target) = dir.ancestors().find(|d| d.is_dir()).map(Path::to_path_buf) else { continue };
            if dirs.contains(&target) {
                continue;
            }
            match watcher.watch(&target, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    appeared |= target == dir && file.exists() && dirs.iter().any(|d| dir.starts_with(d));
                    dirs.insert(target);
                }
                Err(e) => tracing::warn!(target: "weir::reload", dir = %target.display(), error = %e, "cannot watch"),
            }
        }
        appeared
    }

    /// Forgets watches on directories that were removed (their watch is gone with them), even
    /// when a directory of the same name exists again by the time the removal is read: that
    /// is a new directory, which nothing watches yet.
    fn forget_removed(&self, change: &Change) {
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        dirs.retain(|d| {
            let removed = change.removed && change.paths.iter().any(|p| d.starts_with(p));
            let gone = change.paths.iter().any(|p| p.starts_with(d)) && !d.is_dir();
            !removed && !gone
        });
    }
}

/// Set by a SIGHUP that arrives before the reload service listens for it.
static EARLY_SIGHUP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Catches SIGHUP from now on: its default action would end the process while it starts (the
/// modules compile for seconds before the reload service runs). A SIGHUP caught early reloads
/// once the service runs.
pub fn catch_early_sighup() {
    // SAFETY: the action only stores to an atomic, which is async-signal-safe.
    let registered = unsafe {
        signal_hook_registry::register(libc::SIGHUP, || {
            EARLY_SIGHUP.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    if let Err(e) = registered {
        tracing::warn!(target: "weir::reload", error = %e, "cannot catch SIGHUP during start-up");
    }
}

/// Listener, admin and server settings cannot change in a running process: keep the running
/// ones (a port 0 was already resolved) and say so when the file differs.
fn keep_process_settings(next: &mut Loaded, running: &Loaded) {
    let changed = next.config.listeners.len() != running.config.listeners.len()
        || next
            .config
            .listeners
            .iter()
            .zip(&running.config.listeners)
            .any(|(a, b)| a.address.port() != 0 && a.address != b.address)
        || (next.config.admin.address.port() != 0 && next.config.admin.address != running.config.admin.address);
    if changed {
        tracing::warn!(target: "weir::reload", "listener and admin addresses apply at the next start or binary upgrade; keeping the running ones");
    }
    // Certificates renew with a reload; whether a listener speaks TLS at all does not change.
    let mut listeners = running.config.listeners.clone();
    for (i, (kept, wanted)) in listeners.iter_mut().zip(&next.config.listeners).enumerate() {
        if kept.tls.is_some() == wanted.tls.is_some() {
            kept.tls = wanted.tls.clone();
        } else {
            tracing::warn!(target: "weir::reload", listener = i, "turning TLS on or off for a listener applies at the next start or binary upgrade; keeping it as it runs");
        }
    }
    next.config.listeners = listeners;
    next.config.admin = running.config.admin.clone();
    next.config.server = running.config.server.clone();
    if next.config.tracing != running.config.tracing {
        tracing::warn!(target: "weir::reload", "tracing settings apply at the next start; keeping the running ones");
        next.config.tracing = running.config.tracing.clone();
    }
    if next.config.access_log.path != running.config.access_log.path {
        tracing::warn!(target: "weir::reload", "access_log.path applies at the next start; the access log stays where it is (its fields and format change now)");
        next.config.access_log.path = running.config.access_log.path.clone();
    }
}

/// Whether the changed `path` is one of the watched `files` (canonical paths): the path as
/// reported, or what it resolves to when it bears a watched file's name (a symlink to it).
fn is_watched(files: &BTreeSet<PathBuf>, path: &Path) -> bool {
    files.contains(path) || (files.iter().any(|f| f.file_name() == path.file_name()) && files.contains(&absolute(path)))
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory removed and made again before the removal is read is a new directory: its
    /// old watch died with the old one, so it must be watched again (`follow` skips
    /// directories it believes watched).
    #[test]
    fn a_removed_directory_is_forgotten_even_when_it_exists_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("target").join("release");
        std::fs::create_dir_all(&dir).unwrap();
        let files = BTreeSet::from([dir.join("filter.wasm")]);
        let watch = FileWatch {
            watcher: std::sync::Mutex::new(notify::recommended_watcher(|_: notify::Result<notify::Event>| {}).unwrap()),
            rx: tokio::sync::Mutex::new(tokio::sync::mpsc::unbounded_channel().1),
            dirs: Default::default(),
        };
        watch.follow(&files);
        assert!(watch.dirs.lock().unwrap().contains(&dir));
        // A change inside the directory forgets nothing.
        watch.forget_removed(&Change { removed: false, paths: vec![dir.join("filter.wasm")] });
        assert!(watch.dirs.lock().unwrap().contains(&dir));
        // `rm -r target && mkdir -p target/release`, the removal read afterwards.
        std::fs::remove_dir_all(root.path().join("target")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        watch.forget_removed(&Change { removed: true, paths: vec![root.path().join("target")] });
        assert!(!watch.dirs.lock().unwrap().contains(&dir), "the new directory is not taken for the old one");
        watch.follow(&files);
        assert!(watch.dirs.lock().unwrap().contains(&dir), "and is watched again");
    }
}
