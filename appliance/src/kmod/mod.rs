//! Kernel modules: the image's module database, loading in dependency order, the kernel's
//! `request_module()` helper (`/sbin/modprobe` is the init itself) and modalias coldplug.
//!
//! The image builder writes `modules.dep`, `modules.alias`, `modules.softdep` and
//! `modules.builtin` in depmod's formats, restricted to the modules the image carries; this
//! module only reads them. Loading uses `finit_module` on the uncompressed `.ko` files.

mod db;
mod glob;

pub use db::ModDb;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Where the image keeps its modules: `/lib/modules/<release>`.
pub fn modules_dir() -> PathBuf {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    Path::new("/lib/modules").join(release)
}

/// What loading a set of modules did.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Modules this call inserted, in order.
    pub loaded: Vec<String>,
    /// Modules (or requests) that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Modules for hardware this machine lacks (the kernel answered ENODEV), such as a CPU's
    /// accelerated crypto variants when the generic ones are carried too.
    pub not_applicable: Vec<String>,
    /// Guest uptime when the work finished.
    pub finished_at: f64,
}

/// Loads modules from the database, remembering what is already in the kernel.
pub struct Loader {
    db: ModDb,
    done: HashSet<String>,
}

impl Loader {
    pub fn new(db: ModDb) -> Self {
        Self {
            db,
            done: HashSet::new(),
        }
    }

    /// Loads the module or alias `request` with everything it needs.
    pub fn load(&mut self, request: &str, report: &mut LoadReport) {
        let names = match self.db.resolve(request) {
            Ok(names) => names,
            Err(e) => {
                report.failed.push((request.to_string(), e.to_string()));
                return;
            }
        };
        for name in names {
            self.load_module(&name, report, 0);
        }
    }

    fn load_module(&mut self, name: &str, report: &mut LoadReport, depth: usize) {
        if depth > 64 || !self.done.insert(name.to_string()) {
            return;
        }
        if self.db.is_builtin(name) || is_loaded(name) {
            return;
        }
        let Some(module) = self.db.module(name).cloned() else {
            report
                .failed
                .push((name.to_string(), "not in the image".to_string()));
            return;
        };
        for pre in self.db.softdep_pre(name) {
            if let Ok(names) = self.db.resolve(&pre) {
                for n in names {
                    self.load_module(&n, report, depth + 1);
                }
            }
        }
        for dep in &module.deps {
            let dep_name = db::name_of_path(dep);
            self.load_module(&dep_name, report, depth + 1);
        }
        let path = self.db.dir().join(&module.path);
        match insert(&path) {
            Ok(()) => {
                report.loaded.push(name.to_string());
                // The initramfs lives in RAM and a module is never unloaded: its file has done
                // its work, and removing it gives the memory back.
                let _ = std::fs::remove_file(&path);
            }
            Err(InsertError::NoDevice) => report.not_applicable.push(name.to_string()),
            Err(InsertError::Other(e)) => report.failed.push((name.to_string(), e)),
        }
        for post in self.db.softdep_post(name) {
            if let Ok(names) = self.db.resolve(&post) {
                for n in names {
                    self.load_module(&n, report, depth + 1);
                }
            }
        }
    }

    /// Loads the drivers whose aliases match a device present (modalias coldplug).
    pub fn coldplug(&mut self, allowed: &[&str], report: &mut LoadReport) {
        let mut aliases = Vec::new();
        collect_modaliases(Path::new("/sys/devices"), &mut aliases, 0);
        aliases.sort();
        aliases.dedup();
        let allowed: HashSet<String> = allowed.iter().map(|m| db::normalize(m)).collect();
        for alias in aliases {
            for name in self.db.match_alias(&alias) {
                if allowed.contains(&name) {
                    self.load_module(&name, report, 0);
                }
            }
        }
    }
}

/// Loads `requests` on `threads` threads at once, each request with everything it needs.
///
/// Module initialisation (btrfs's RAID6 benchmark, nfsd, ksmbd, their crypto) dominates the
/// boot, and independent modules initialise in parallel on several CPUs. Two threads may meet
/// on a shared dependency: one inserts it, the other sees it live or coming, and the kernel
/// makes a module that needs a coming one wait for it.
pub fn load_parallel(db: &ModDb, requests: &[&str], threads: usize) -> LoadReport {
    let threads = threads.clamp(1, 8);
    let reports: Vec<LoadReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<&str> = requests.iter().skip(t).step_by(threads).copied().collect();
                let db = db.clone();
                s.spawn(move || {
                    let mut loader = Loader::new(db);
                    let mut report = LoadReport::default();
                    for request in mine {
                        loader.load(request, &mut report);
                    }
                    report
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| LoadReport {
                    failed: vec![("module loader".into(), "a loader thread panicked".into())],
                    ..Default::default()
                })
            })
            .collect()
    });
    let mut total = LoadReport::default();
    for r in reports {
        total.loaded.extend(r.loaded);
        total.failed.extend(r.failed);
        total.not_applicable.extend(r.not_applicable);
    }
    total
}

/// Whether the kernel already has module `name` (loaded or being loaded).
fn is_loaded(name: &str) -> bool {
    Path::new("/sys/module")
        .join(name)
        .join("initstate")
        .exists()
}

enum InsertError {
    /// The module has nothing to drive here.
    NoDevice,
    Other(String),
}

/// Inserts one module file into the kernel.
fn insert(path: &Path) -> Result<(), InsertError> {
    let file = std::fs::File::open(path)
        .map_err(|e| InsertError::Other(format!("cannot open {}: {e}", path.display())))?;
    match rustix::system::finit_module(&file, c"", 0) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(rustix::io::Errno::NODEV) => Err(InsertError::NoDevice),
        Err(e) => Err(InsertError::Other(format!("{}: {e}", path.display()))),
    }
}

fn collect_modaliases(dir: &Path, out: &mut Vec<String>, depth: usize) {
    if depth > 24 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_symlink() {
            continue;
        }
        if ft.is_dir() {
            collect_modaliases(&path, out, depth + 1);
        } else if entry.file_name() == "modalias" {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let text = text.trim();
                if !text.is_empty() {
                    out.push(text.to_string());
                }
            }
        }
    }
}

/// `/sbin/modprobe` as the kernel runs it: `modprobe -q -- NAME`. Returns the exit status.
pub fn modprobe_main(args: &[String]) -> i32 {
    let mut quiet = false;
    let mut names = Vec::new();
    let mut after_dashes = false;
    for arg in args {
        if !after_dashes && arg == "--" {
            after_dashes = true;
        } else if !after_dashes && arg.starts_with('-') {
            quiet |= arg == "-q" || arg == "--quiet";
        } else {
            names.push(arg.clone());
        }
    }
    if names.is_empty() {
        eprintln!("modprobe: no module named; usage: modprobe [-q] -- NAME");
        return 1;
    }
    let db = match ModDb::load(&modules_dir()) {
        Ok(db) => db,
        Err(e) => {
            if !quiet {
                eprintln!("modprobe: {e}");
            }
            return 1;
        }
    };
    let mut loader = Loader::new(db);
    let mut report = LoadReport::default();
    // The kernel asks for one module; later arguments are module parameters, which the image
    // does not use.
    loader.load(&names[0], &mut report);
    if report.failed.is_empty() {
        0
    } else {
        if !quiet {
            for (name, why) in &report.failed {
                eprintln!("modprobe: {name}: {why}");
            }
        }
        1
    }
}
