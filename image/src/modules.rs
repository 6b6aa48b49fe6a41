//! Kernel modules: the index of every module in the kernel package, the closure a board needs,
//! and the depmod-format files written into the image.
//!
//! Debian's package ships no `modules.dep`/`modules.alias`/`modules.softdep` (depmod makes them
//! at install time), so [`ModuleIndex::scan`] reads the same facts from each module's ELF
//! `.modinfo` section (`name=`, `depends=`, `softdep=`, `alias=`), plus the builtin modules from
//! `modules.builtin` and `modules.builtin.modinfo`. Scanning ~4200 xz-compressed modules takes
//! seconds, so [`ModuleIndex::load_or_scan`] caches the index as JSON keyed by kernel release.
//!
//! [`ModuleIndex::closure`] resolves requested names or aliases the way modprobe does (exact
//! module name with `-` and `_` equal, else every module whose alias glob matches, else a
//! builtin module), adds hard dependencies and `pre:`/`post:` soft dependencies, and returns the
//! modules in a valid load order. [`Closure::depmod_files`] renders `modules.dep`,
//! `modules.alias`, `modules.softdep` and `modules.builtin` restricted to the closure.
//!
//! What does not live here: downloading the package ([`crate::kernel`]) and packing the files
//! into the initramfs ([`mod@crate::build`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};
use serde::{Deserialize, Serialize};

/// Bumped when the cached index's shape or contents change.
const INDEX_FORMAT: u32 = 1;

/// One loadable module of the package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// The module name as the kernel knows it (`name=`), e.g. `crc32c_generic`.
    pub name: String,
    /// Path relative to the modules folder, as in the package: `kernel/fs/btrfs/btrfs.ko.xz`.
    pub path: String,
    /// Hard dependencies (`depends=`), module names.
    pub depends: Vec<String>,
    /// Raw `softdep=` values, e.g. `pre: crc32c post: foo`, one per entry.
    pub softdeps: Vec<String>,
    /// Alias patterns (`alias=`), fnmatch globs.
    pub aliases: Vec<String>,
}

impl ModuleInfo {
    /// The path of the decompressed module in the image: [`ModuleInfo::path`] without `.xz`,
    /// `.zst` or `.gz`.
    pub fn image_path(&self) -> &str {
        [".xz", ".zst", ".gz"]
            .iter()
            .find_map(|ext| self.path.strip_suffix(ext))
            .unwrap_or(&self.path)
    }

    /// Soft dependencies of one kind (`pre` or `post`), in order.
    fn softdeps_of(&self, kind: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for value in &self.softdeps {
            let mut current = None;
            for word in value.split_whitespace() {
                match word.strip_suffix(':') {
                    Some(k) => current = Some(k),
                    None if current == Some(kind) => out.push(word),
                    None => {}
                }
            }
        }
        out
    }
}

/// A module built into the kernel: nothing to load, but it satisfies requests and dependencies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltinInfo {
    pub name: String,
    pub aliases: Vec<String>,
}

/// Every module of one kernel release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleIndex {
    pub format: u32,
    pub release: String,
    /// Loadable modules by normalized name (`-` replaced by `_`).
    pub modules: BTreeMap<String, ModuleInfo>,
    /// Builtin modules by normalized name.
    pub builtin: BTreeMap<String, BuiltinInfo>,
    /// The package's `modules.builtin`, copied as is into the image (empty if absent).
    pub builtin_file: String,
}

/// A failure to read the modules of a kernel package.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "cannot read `{path}`: {source}; fetch the kernel again (delete its folder in the cache)"
    )]
    Io { path: PathBuf, source: io::Error },
    #[error("`{path}` is not a valid kernel module: {detail}; fetch the kernel again (delete its folder in the cache)")]
    BadModule { path: PathBuf, detail: String },
    #[error("cannot write the module index cache `{path}`: {source}; check that the cache directory is writable")]
    Cache { path: PathBuf, source: io::Error },
}

/// A failure to compute a closure: the board asks for something the kernel does not have.
#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error("module `{0}` is neither a module name, a module alias nor a builtin module of kernel {1}; fix the board's module list")]
    Unknown(String, String),
    #[error("module `{module}` depends on `{dependency}`, which kernel {release} does not have; the kernel package is inconsistent, fetch it again")]
    MissingDependency {
        module: String,
        dependency: String,
        release: String,
    },
}

/// Module names compare with `-` and `_` equal, as the kernel does.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Aliases compare with `-` and `_` equal outside `[...]` classes (as kmod does).
fn normalize_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// fnmatch(3)-style match without flags: `*`, `?`, `[...]` (with ranges and `!`/`^`), `\`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = match_class(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        // An unterminated class matches a literal `[`.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == t[ti] {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if c == t[ti] {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last `*` swallow one more character.
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`: `(matched, index after ])`, or
/// `None` if the class is not terminated.
fn match_class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

/// What a name resolves to.
enum Resolved {
    Modules(Vec<String>),
    Builtin(String),
}

impl ModuleIndex {
    /// The cache file for `release` in `cache_dir`.
    pub fn cache_path(cache_dir: &Path, release: &str) -> PathBuf {
        cache_dir.join(format!("module-index-{release}.json"))
    }

    /// Loads the cached index for `release`, or scans `modules_dir` and caches the result.
    pub fn load_or_scan(
        cache_dir: &Path,
        release: &str,
        modules_dir: &Path,
    ) -> Result<Self, IndexError> {
        let path = Self::cache_path(cache_dir, release);
        if let Ok(bytes) = fs::read(&path) {
            match serde_json::from_slice::<ModuleIndex>(&bytes) {
                Ok(index) if index.format == INDEX_FORMAT && index.release == release => {
                    log::debug!("module index loaded from {}", path.display());
                    return Ok(index);
                }
                _ => log::info!("module index cache {} is stale, rescanning", path.display()),
            }
        }
        let index = Self::scan(release, modules_dir)?;
        let json = serde_json::to_vec(&index).map_err(|e| IndexError::Cache {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        let tmp = path.with_extension("json.partial");
        fs::write(&tmp, json)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| IndexError::Cache {
                path: path.clone(),
                source,
            })?;
        Ok(index)
    }

    /// Reads every module under `modules_dir` (the package's `usr/lib/modules/<release>`).
    pub fn scan(release: &str, modules_dir: &Path) -> Result<Self, IndexError> {
        let mut files = Vec::new();
        collect_modules(modules_dir, modules_dir, &mut files)?;
        files.sort();
        log::info!(
            "scanning {} kernel modules in {}",
            files.len(),
            modules_dir.display()
        );
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let chunk = files.len().div_ceil(threads).max(1);
        let results: Vec<Result<Vec<ModuleInfo>, IndexError>> = std::thread::scope(|s| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|rel| read_module(modules_dir, rel))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(IndexError::BadModule {
                            path: modules_dir.to_owned(),
                            detail: "module reader thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut modules = BTreeMap::new();
        for part in results {
            for m in part? {
                modules.insert(normalize(&m.name), m);
            }
        }

        let read_opt = |name: &str| -> Result<Option<Vec<u8>>, IndexError> {
            let path = modules_dir.join(name);
            match fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    log::debug!("{} absent: no builtin modules known", path.display());
                    Ok(None)
                }
                Err(source) => Err(IndexError::Io { path, source }),
            }
        };
        let builtin_file = read_opt("modules.builtin")?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let builtin_modinfo = read_opt("modules.builtin.modinfo")?.unwrap_or_default();
        Ok(ModuleIndex {
            format: INDEX_FORMAT,
            release: release.to_owned(),
            modules,
            builtin: parse_builtin(&builtin_file, &builtin_modinfo),
            builtin_file,
        })
    }

    /// Resolves one name: exact module, else alias matches, else builtin (name or alias).
    fn resolve(&self, request: &str) -> Option<Resolved> {
        let name = normalize(request);
        if self.modules.contains_key(&name) {
            return Some(Resolved::Modules(vec![name]));
        }
        if self.builtin.contains_key(&name) {
            return Some(Resolved::Builtin(name));
        }
        let alias = normalize_alias(request);
        let mut hits: Vec<String> = self
            .modules
            .iter()
            .filter(|(_, m)| {
                m.aliases
                    .iter()
                    .any(|a| glob_match(&normalize_alias(a), &alias))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !hits.is_empty() {
            // Generic implementations first: they work on every CPU (TCG lacks some features).
            hits.sort_by_key(|k| (!k.ends_with("_generic"), k.clone()));
            return Some(Resolved::Modules(hits));
        }
        self.builtin
            .iter()
            .find(|(_, b)| {
                b.aliases
                    .iter()
                    .any(|a| glob_match(&normalize_alias(a), &alias))
            })
            .map(|(k, _)| Resolved::Builtin(k.clone()))
    }

    /// The modules needed for `requests` (names or aliases), in load order.
    pub fn closure<'a>(
        &self,
        requests: impl IntoIterator<Item = &'a str>,
    ) -> Result<Closure, ClosureError> {
        let mut walk = Walk {
            index: self,
            state: HashMap::new(),
            order: Vec::new(),
            builtin: BTreeSet::new(),
        };
        for request in requests {
            match self.resolve(request) {
                Some(Resolved::Modules(names)) => {
                    for name in names {
                        walk.visit(&name)?;
                    }
                }
                Some(Resolved::Builtin(name)) => {
                    log::debug!("`{request}` is builtin ({name})");
                    walk.builtin.insert(name);
                }
                None => {
                    return Err(ClosureError::Unknown(
                        request.to_owned(),
                        self.release.clone(),
                    ))
                }
            }
        }
        Ok(Closure {
            release: self.release.clone(),
            // Indexing cannot panic: every key in `order` came from `self.modules`.
            modules: walk.order.iter().map(|k| self.modules[k].clone()).collect(),
            builtin: walk.builtin.into_iter().collect(),
            builtin_file: self.builtin_file.clone(),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    InProgress,
    Done,
}

/// Depth-first walk: a module is appended after its dependencies and `pre:` soft dependencies;
/// its `post:` soft dependencies are visited after it.
struct Walk<'a> {
    index: &'a ModuleIndex,
    state: HashMap<String, Mark>,
    order: Vec<String>,
    builtin: BTreeSet<String>,
}

impl Walk<'_> {
    fn visit(&mut self, key: &str) -> Result<(), ClosureError> {
        if self.state.contains_key(key) {
            // Done, or a soft-dependency cycle: the edge that would close it is dropped.
            return Ok(());
        }
        self.state.insert(key.to_owned(), Mark::InProgress);
        // Indexing cannot panic: `visit` is only called with keys that `resolve` found.
        let module = &self.index.modules[key];
        for dep in &module.depends {
            match self.index.resolve(dep) {
                Some(Resolved::Modules(names)) => {
                    for n in names {
                        self.visit(&n)?;
                    }
                }
                Some(Resolved::Builtin(n)) => {
                    self.builtin.insert(n);
                }
                None => {
                    return Err(ClosureError::MissingDependency {
                        module: module.name.clone(),
                        dependency: dep.clone(),
                        release: self.index.release.clone(),
                    })
                }
            }
        }
        for dep in module.softdeps_of("pre") {
            self.soft(&module.name, dep)?;
        }
        self.state.insert(key.to_owned(), Mark::Done);
        self.order.push(key.to_owned());
        for dep in module.softdeps_of("post") {
            self.soft(&module.name, dep)?;
        }
        Ok(())
    }

    /// A soft dependency: resolved like a request (also through `crypto-` aliases), skipped if
    /// the kernel has nothing by that name.
    fn soft(&mut self, module: &str, dep: &str) -> Result<(), ClosureError> {
        let resolved = self
            .index
            .resolve(dep)
            .or_else(|| self.index.resolve(&format!("crypto-{dep}")));
        match resolved {
            Some(Resolved::Modules(names)) => {
                for n in names {
                    if self.state.get(&n) != Some(&Mark::InProgress) {
                        self.visit(&n)?;
                    }
                }
            }
            Some(Resolved::Builtin(n)) => {
                self.builtin.insert(n);
            }
            None => log::debug!("soft dependency `{dep}` of {module} not found; skipped"),
        }
        Ok(())
    }
}

/// The modules an image carries, in load order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    pub release: String,
    /// Loadable modules; each comes after its dependencies and `pre:` soft dependencies.
    pub modules: Vec<ModuleInfo>,
    /// Builtin modules that satisfied a request or dependency (nothing to carry).
    pub builtin: Vec<String>,
    builtin_file: String,
}

/// The depmod-format files for a closure, each sorted line by line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepmodFiles {
    pub dep: String,
    pub alias: String,
    pub softdep: String,
    pub builtin: String,
}

impl Closure {
    /// The module named `name` (`-` and `_` equal), if carried.
    pub fn get(&self, name: &str) -> Option<&ModuleInfo> {
        let n = normalize(name);
        self.modules.iter().find(|m| normalize(&m.name) == n)
    }

    /// The position of `name` in the load order.
    pub fn position(&self, name: &str) -> Option<usize> {
        let n = normalize(name);
        self.modules.iter().position(|m| normalize(&m.name) == n)
    }

    /// Renders `modules.dep`, `modules.alias`, `modules.softdep` and `modules.builtin`.
    ///
    /// `modules.dep` follows depmod exactly: `path: dep dep...` with every transitive hard
    /// dependency, the modules that use others first and the deepest dependency last, so a
    /// loader that reads the list from right to left (or resolves each dependency's own line
    /// recursively, as modprobe does) loads them in a valid order. Paths are of the
    /// decompressed `.ko` files.
    pub fn depmod_files(&self) -> DepmodFiles {
        let pos: HashMap<String, usize> = self
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| (normalize(&m.name), i))
            .collect();
        let mut dep = Vec::new();
        let mut alias = Vec::new();
        let mut softdep = Vec::new();
        for m in &self.modules {
            // Transitive hard dependencies carried in the image (builtins need no line).
            let mut all = BTreeSet::new();
            let mut stack: Vec<&str> = m.depends.iter().map(String::as_str).collect();
            while let Some(d) = stack.pop() {
                if let Some(&i) = pos.get(&normalize(d)) {
                    if all.insert(i) {
                        stack.extend(self.modules[i].depends.iter().map(String::as_str));
                    }
                }
            }
            let mut line = format!("{}:", m.image_path());
            for i in all.into_iter().rev() {
                line.push(' ');
                line.push_str(self.modules[i].image_path());
            }
            dep.push(line);
            alias.extend(m.aliases.iter().map(|a| format!("alias {a} {}", m.name)));
            softdep.extend(m.softdeps.iter().map(|s| format!("softdep {} {s}", m.name)));
        }
        let join = |mut v: Vec<String>| {
            v.sort();
            v.dedup();
            v.into_iter().map(|l| l + "\n").collect::<String>()
        };
        DepmodFiles {
            dep: join(dep),
            alias: join(alias),
            softdep: join(softdep),
            builtin: self.builtin_file.clone(),
        }
    }
}

/// Collects module files (`*.ko`, `*.ko.xz`, `*.ko.zst`, `*.ko.gz`) relative to `root`.
fn collect_modules(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), IndexError> {
    let entries = fs::read_dir(dir).map_err(|source| IndexError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| IndexError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            collect_modules(root, &path, out)?;
        } else if let Some(rel) = path.strip_prefix(root).ok().and_then(|r| r.to_str()) {
            if [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|e| rel.ends_with(e))
            {
                out.push(rel.to_owned());
            }
        }
    }
    Ok(())
}

/// Decompresses a module file (xz, or plain `.ko`).
pub fn read_module_bytes(path: &Path) -> Result<Vec<u8>, IndexError> {
    let io_err = |source| IndexError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs::File::open(path).map_err(io_err)?;
    let name = path.to_string_lossy();
    let mut data = Vec::new();
    if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(io::BufReader::new(file))
            .read_to_end(&mut data)
            .map_err(|e| IndexError::BadModule {
                path: path.to_owned(),
                detail: format!("xz: {e}"),
            })?;
    } else if name.ends_with(".ko") {
        io::BufReader::new(file)
            .read_to_end(&mut data)
            .map_err(io_err)?;
    } else {
        return Err(IndexError::BadModule {
            path: path.to_owned(),
            detail: "unsupported compression (only .ko and .ko.xz are read)".into(),
        });
    }
    Ok(data)
}

fn read_module(root: &Path, rel: &str) -> Result<ModuleInfo, IndexError> {
    let path = root.join(rel);
    let data = read_module_bytes(&path)?;
    let bad = |detail: String| IndexError::BadModule {
        path: path.clone(),
        detail,
    };
    let elf = object::File::parse(&*data).map_err(|e| bad(format!("ELF: {e}")))?;
    let section = elf
        .section_by_name(".modinfo")
        .ok_or_else(|| bad("no .modinfo section".into()))?;
    let modinfo = section.data().map_err(|e| bad(format!(".modinfo: {e}")))?;
    let mut info = parse_modinfo(modinfo);
    info.path = rel.to_owned();
    if info.name.is_empty() {
        // Old modules have no `name=`: the file name is the module name.
        let file = rel.rsplit('/').next().unwrap_or(rel);
        info.name = normalize(file.split(".ko").next().unwrap_or(file));
    }
    Ok(info)
}

/// Parses a `.modinfo` section: NUL-separated `key=value` strings.
pub fn parse_modinfo(section: &[u8]) -> ModuleInfo {
    let mut info = ModuleInfo {
        name: String::new(),
        path: String::new(),
        depends: vec![],
        softdeps: vec![],
        aliases: vec![],
    };
    for field in section.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let field = String::from_utf8_lossy(field);
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "name" => info.name = value.to_owned(),
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
            ),
            "softdep" => info.softdeps.push(value.to_owned()),
            "alias" => info.aliases.push(value.to_owned()),
            _ => {}
        }
    }
    info
}

/// Builtin modules from `modules.builtin` (paths) and `modules.builtin.modinfo`
/// (`name.key=value` NUL-separated), keyed by normalized name.
fn parse_builtin(list: &str, modinfo: &[u8]) -> BTreeMap<String, BuiltinInfo> {
    let mut out = BTreeMap::new();
    for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let file = line.rsplit('/').next().unwrap_or(line);
        let name = normalize(file.strip_suffix(".ko").unwrap_or(file));
        out.entry(name.clone()).or_insert(BuiltinInfo {
            name,
            aliases: vec![],
        });
    }
    for field in modinfo.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let field = String::from_utf8_lossy(field);
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let Some((module, key)) = key.split_once('.') else {
            continue;
        };
        let name = normalize(module);
        let entry = out.entry(name.clone()).or_insert(BuiltinInfo {
            name,
            aliases: vec![],
        });
        if key == "alias" {
            entry.aliases.push(value.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(
        name: &str,
        path: &str,
        depends: &[&str],
        softdeps: &[&str],
        aliases: &[&str],
    ) -> ModuleInfo {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        ModuleInfo {
            name: name.into(),
            path: path.into(),
            depends: s(depends),
            softdeps: s(softdeps),
            aliases: s(aliases),
        }
    }

    /// A small kernel shaped like the real one.
    fn fixture() -> ModuleIndex {
        let modules = [
            m(
                "btrfs",
                "kernel/fs/btrfs/btrfs.ko.xz",
                &["xor", "raid6_pq", "libcrc32c"],
                &["pre: crc32c", "pre: sha256"],
                &["fs-btrfs", "devname:btrfs-control"],
            ),
            m(
                "libcrc32c",
                "kernel/lib/libcrc32c.ko.xz",
                &[],
                &["pre: crc32c"],
                &[],
            ),
            m("raid6_pq", "kernel/lib/raid6/raid6_pq.ko.xz", &[], &[], &[]),
            m("xor", "kernel/crypto/xor.ko.xz", &[], &[], &[]),
            m(
                "crc32c_generic",
                "kernel/crypto/crc32c_generic.ko.xz",
                &[],
                &[],
                &[
                    "crypto-crc32c-generic",
                    "crc32c-generic",
                    "crypto-crc32c",
                    "crc32c",
                ],
            ),
            m(
                "crc32c_intel",
                "kernel/arch/x86/crypto/crc32c-intel.ko.xz",
                &[],
                &[],
                &[
                    "crypto-crc32c-intel",
                    "crypto-crc32c",
                    "crc32c",
                    "cpu:type:x86,ven*fam*mod*:feature:*0094*",
                ],
            ),
            m(
                "ksmbd",
                "kernel/fs/smb/server/ksmbd.ko.xz",
                &["nls_ucs2_utils"],
                &["pre: ecb", "pre: gcm post: cmac", "pre: nosuchthing"],
                &["fs-ksmbd"],
            ),
            m(
                "nls_ucs2_utils",
                "kernel/fs/nls/nls_ucs2_utils.ko.xz",
                &[],
                &[],
                &[],
            ),
            m("ecb", "kernel/crypto/ecb.ko.xz", &[], &[], &["crypto-ecb"]),
            m(
                "gcm",
                "kernel/crypto/gcm.ko.xz",
                &["ghash_generic"],
                &[],
                &["crypto-gcm", "crypto-rfc4106"],
            ),
            m(
                "ghash_generic",
                "kernel/crypto/ghash-generic.ko.xz",
                &[],
                &[],
                &["crypto-ghash"],
            ),
            m(
                "cmac",
                "kernel/crypto/cmac.ko.xz",
                &[],
                &[],
                &["crypto-cmac"],
            ),
            m(
                "virtio_scsi",
                "kernel/drivers/scsi/virtio_scsi.ko.xz",
                &[],
                &[],
                &["virtio:d00000008v*"],
            ),
            m(
                "e1000e",
                "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.xz",
                &[],
                &[],
                &["pci:v00008086d000010D3sv*sd*bc*sc*i*"],
            ),
        ];
        let mut builtin = BTreeMap::new();
        builtin.insert(
            "sha256_generic".to_string(),
            BuiltinInfo {
                name: "sha256_generic".into(),
                aliases: vec!["crypto-sha256".into(), "sha256".into()],
            },
        );
        builtin.insert(
            "unicode".to_string(),
            BuiltinInfo {
                name: "unicode".into(),
                aliases: vec![],
            },
        );
        ModuleIndex {
            format: INDEX_FORMAT,
            release: "6.12.0-test".into(),
            modules: modules
                .into_iter()
                .map(|m| (normalize(&m.name), m))
                .collect(),
            builtin,
            builtin_file: "kernel/crypto/sha256_generic.ko\nkernel/fs/unicode/unicode.ko\n".into(),
        }
    }

    fn names(c: &Closure) -> Vec<&str> {
        c.modules.iter().map(|m| m.name.as_str()).collect()
    }

    fn before(c: &Closure, a: &str, b: &str) {
        let (pa, pb) = (c.position(a), c.position(b));
        assert!(
            pa.is_some() && pb.is_some() && pa < pb,
            "{a} must load before {b}: {:?}",
            names(c)
        );
    }

    #[test]
    fn glob() {
        assert!(glob_match("crypto-crc32c", "crypto-crc32c"));
        assert!(glob_match(
            "pci:v00008086d*sv*",
            "pci:v00008086d000010D3sv00001234"
        ));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("x[0-9]y", "x5y"));
        assert!(!glob_match("x[!0-9]y", "x5y"));
        assert!(glob_match("x[!0-9]y", "xay"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("crypto-gcm", "crypto-gcm-extra"));
        assert!(glob_match("*crc*", "crypto-crc32c"));
    }

    #[test]
    fn btrfs_closure_order_and_softdeps() {
        let c = fixture().closure(["btrfs"]).unwrap();
        assert_eq!(
            names(&c),
            [
                "xor",
                "raid6_pq",
                "crc32c_generic",
                "crc32c_intel",
                "libcrc32c",
                "btrfs"
            ],
            "dependencies and pre: softdeps first, generic crc32c preferred"
        );
        before(&c, "crc32c_generic", "btrfs");
        // `pre: sha256` is satisfied by a builtin module.
        assert_eq!(c.builtin, ["sha256_generic"]);
    }

    #[test]
    fn ksmbd_soft_pre_post_and_missing_softdep() {
        let c = fixture().closure(["ksmbd"]).unwrap();
        // `pre: ecb` resolves through the `crypto-ecb` alias; `nosuchthing` is skipped.
        before(&c, "ecb", "ksmbd");
        before(&c, "ghash_generic", "gcm");
        before(&c, "gcm", "ksmbd");
        before(&c, "nls_ucs2_utils", "ksmbd");
        // `post: cmac` is carried, after ksmbd.
        before(&c, "ksmbd", "cmac");
        assert_eq!(c.modules.len(), 6);
    }

    #[test]
    fn requests_by_alias_dash_underscore_and_builtin() {
        let idx = fixture();
        let c = idx
            .closure([
                "crypto-gcm",
                "virtio-scsi",
                "crc32c-generic",
                "unicode",
                "crypto-sha256",
            ])
            .unwrap();
        assert_eq!(
            names(&c),
            ["ghash_generic", "gcm", "virtio_scsi", "crc32c_generic"]
        );
        assert_eq!(c.builtin, ["sha256_generic", "unicode"]);
        // Glob aliases (device aliases) match too.
        let c = idx
            .closure(["pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00"])
            .unwrap();
        assert_eq!(names(&c), ["e1000e"]);
    }

    #[test]
    fn unknown_request_is_an_error_naming_it() {
        let err = fixture().closure(["btrfs", "no-such-module"]).unwrap_err();
        assert!(matches!(&err, ClosureError::Unknown(n, _) if n == "no-such-module"));
        assert!(err.to_string().contains("no-such-module"));
    }

    #[test]
    fn missing_hard_dependency_is_an_error() {
        let mut idx = fixture();
        idx.modules.remove("xor");
        let err = idx.closure(["btrfs"]).unwrap_err();
        assert!(err.to_string().contains("xor"), "{err}");
    }

    #[test]
    fn softdep_cycle_terminates() {
        let mut idx = fixture();
        idx.modules
            .insert("a".into(), m("a", "a.ko.xz", &[], &["post: b"], &[]));
        idx.modules
            .insert("b".into(), m("b", "b.ko.xz", &[], &["pre: a"], &[]));
        let c = idx.closure(["a", "b"]).unwrap();
        assert_eq!(names(&c), ["a", "b"]);
    }

    #[test]
    fn golden_depmod_files() {
        let c = fixture().closure(["btrfs", "crypto-gcm"]).unwrap();
        let f = c.depmod_files();
        assert_eq!(
            f.dep,
            "kernel/arch/x86/crypto/crc32c-intel.ko:\n\
             kernel/crypto/crc32c_generic.ko:\n\
             kernel/crypto/gcm.ko: kernel/crypto/ghash-generic.ko\n\
             kernel/crypto/ghash-generic.ko:\n\
             kernel/crypto/xor.ko:\n\
             kernel/fs/btrfs/btrfs.ko: kernel/lib/libcrc32c.ko kernel/lib/raid6/raid6_pq.ko kernel/crypto/xor.ko\n\
             kernel/lib/libcrc32c.ko:\n\
             kernel/lib/raid6/raid6_pq.ko:\n"
        );
        assert_eq!(
            f.alias,
            "alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\n\
             alias crc32c crc32c_generic\n\
             alias crc32c crc32c_intel\n\
             alias crc32c-generic crc32c_generic\n\
             alias crypto-crc32c crc32c_generic\n\
             alias crypto-crc32c crc32c_intel\n\
             alias crypto-crc32c-generic crc32c_generic\n\
             alias crypto-crc32c-intel crc32c_intel\n\
             alias crypto-gcm gcm\n\
             alias crypto-ghash ghash_generic\n\
             alias crypto-rfc4106 gcm\n\
             alias devname:btrfs-control btrfs\n\
             alias fs-btrfs btrfs\n"
        );
        assert_eq!(
            f.softdep,
            "softdep btrfs pre: crc32c\nsoftdep btrfs pre: sha256\nsoftdep libcrc32c pre: crc32c\n"
        );
        assert_eq!(
            f.builtin,
            "kernel/crypto/sha256_generic.ko\nkernel/fs/unicode/unicode.ko\n"
        );
    }

    #[test]
    fn modinfo_and_builtin_parsing() {
        let info = parse_modinfo(
            b"softdep=pre: crc32c\0license=GPL\0alias=fs-btrfs\0depends=xor,raid6_pq\0name=btrfs\0\0\0alias=devname:btrfs-control\0",
        );
        assert_eq!(info.name, "btrfs");
        assert_eq!(info.depends, ["xor", "raid6_pq"]);
        assert_eq!(info.softdeps, ["pre: crc32c"]);
        assert_eq!(info.aliases, ["fs-btrfs", "devname:btrfs-control"]);
        assert_eq!(parse_modinfo(b"depends=\0").depends, Vec::<String>::new());

        let b = parse_builtin(
            "kernel/crypto/sha256_generic.ko\nkernel/fs/unicode/unicode.ko\n",
            b"sha256_generic.alias=crypto-sha256\0sha256_generic.license=GPL\0crc-t10dif.alias=foo\0",
        );
        assert_eq!(b["sha256_generic"].aliases, ["crypto-sha256"]);
        assert!(b.contains_key("unicode"));
        assert!(b.contains_key("crc_t10dif"));
    }
}
