//! The module database the image carries: depmod-format `modules.dep`, `modules.alias`,
//! `modules.softdep` and `modules.builtin`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::glob;

#[derive(Debug, thiserror::Error)]
pub enum ModError {
    #[error("cannot read the module database {path}: {source}; the image is incomplete, rebuild it with `cargo xtask image`")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no module or alias '{0}' in the image; add it to the board's module list")]
    Unknown(String),
}

/// One module file and its dependencies, as `modules.dep` lists them.
#[derive(Debug, Clone)]
pub struct Module {
    /// Path relative to the module directory.
    pub path: String,
    /// Paths of the modules it needs.
    pub deps: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct ModDb {
    dir: PathBuf,
    modules: BTreeMap<String, Module>,
    aliases: Vec<(String, String)>,
    softdeps: BTreeMap<String, (Vec<String>, Vec<String>)>,
    builtin: BTreeSet<String>,
}

/// The kernel treats `-` and `_` in module names alike.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// `kernel/fs/btrfs/btrfs.ko` → `btrfs`.
pub fn name_of_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    normalize(base)
}

impl ModDb {
    /// Reads the database in `dir` (`/lib/modules/<release>`).
    pub fn load(dir: &Path) -> Result<Self, ModError> {
        let read = |name: &str, required: bool| -> Result<String, ModError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(source) => Err(ModError::Read { path, source }),
            }
        };
        Ok(Self::parse(
            dir,
            &read("modules.dep", true)?,
            &read("modules.alias", false)?,
            &read("modules.softdep", false)?,
            &read("modules.builtin", false)?,
        ))
    }

    /// Builds the database from the files' texts. Malformed lines are skipped.
    pub fn parse(dir: &Path, dep: &str, alias: &str, softdep: &str, builtin: &str) -> Self {
        let mut db = ModDb {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            db.modules.insert(
                name_of_path(path),
                Module {
                    path: path.to_string(),
                    deps: deps.split_whitespace().map(str::to_string).collect(),
                },
            );
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                db.aliases.push((pattern.to_string(), normalize(module)));
            }
        }
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let entry = db.softdeps.entry(normalize(module)).or_default();
            let mut post = false;
            for word in words {
                match word {
                    "pre:" => post = false,
                    "post:" => post = true,
                    name if post => entry.1.push(name.to_string()),
                    name => entry.0.push(name.to_string()),
                }
            }
        }
        for line in builtin.lines() {
            let line = line.trim();
            if !line.is_empty() {
                db.builtin.insert(name_of_path(line));
            }
        }
        db
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(name)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(name)
    }

    pub fn softdep_pre(&self, name: &str) -> Vec<String> {
        self.softdeps
            .get(name)
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }

    pub fn softdep_post(&self, name: &str) -> Vec<String> {
        self.softdeps
            .get(name)
            .map(|s| s.1.clone())
            .unwrap_or_default()
    }

    /// The modules whose aliases match `text`.
    pub fn match_alias(&self, text: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .aliases
            .iter()
            .filter(|(pattern, _)| glob::matches(pattern, text))
            .map(|(_, module)| module.clone())
            .collect();
        out.dedup();
        out
    }

    /// Resolves a module name or alias to module names. A builtin module resolves to itself
    /// (nothing to load).
    pub fn resolve(&self, request: &str) -> Result<Vec<String>, ModError> {
        let name = normalize(request);
        if self.modules.contains_key(&name) || self.builtin.contains(&name) {
            return Ok(vec![name]);
        }
        let matched = self.match_alias(request);
        if matched.is_empty() {
            Err(ModError::Unknown(request.to_string()))
        } else {
            Ok(matched)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModDb {
        ModDb::parse(
            Path::new("/lib/modules/x"),
            "kernel/fs/btrfs/btrfs.ko: kernel/lib/raid6/raid6_pq.ko kernel/lib/libcrc32c.ko\n\
             kernel/lib/raid6/raid6_pq.ko:\n\
             kernel/lib/libcrc32c.ko:\n\
             kernel/crypto/crc32c_generic.ko:\n\
             garbage line without colon\n",
            "alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\nalias fs-btrfs btrfs\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio-pci\nbad\n",
            "softdep libcrc32c pre: crc32c post: extra\n",
            "kernel/crypto/sha256_generic.ko\n",
        )
    }

    #[test]
    fn resolves_names_aliases_and_builtins() {
        let db = sample();
        assert_eq!(db.len(), 4);
        assert_eq!(db.resolve("btrfs").unwrap(), vec!["btrfs"]);
        assert_eq!(db.resolve("raid6-pq").unwrap(), vec!["raid6_pq"]);
        assert_eq!(db.resolve("fs-btrfs").unwrap(), vec!["btrfs"]);
        assert_eq!(db.resolve("crypto-crc32c").unwrap(), vec!["crc32c_generic"]);
        assert_eq!(
            db.resolve("sha256_generic").unwrap(),
            vec!["sha256_generic"]
        );
        assert!(db.is_builtin("sha256_generic"));
        assert_eq!(
            db.resolve("pci:v00001AF4d00001004sv00001AF4sd00000008bc01sc00i00")
                .unwrap(),
            vec!["virtio_pci"]
        );
        let err = db.resolve("nonexistent").unwrap_err().to_string();
        assert!(err.contains("nonexistent"), "{err}");
    }

    #[test]
    fn dependencies_and_softdeps() {
        let db = sample();
        let btrfs = db.module("btrfs").unwrap();
        assert_eq!(
            btrfs.deps,
            vec!["kernel/lib/raid6/raid6_pq.ko", "kernel/lib/libcrc32c.ko"]
        );
        assert_eq!(db.softdep_pre("libcrc32c"), vec!["crc32c"]);
        assert_eq!(db.softdep_post("libcrc32c"), vec!["extra"]);
        assert!(db.softdep_pre("btrfs").is_empty());
        assert_eq!(name_of_path("kernel/a/b-c.ko"), "b_c");
        assert_eq!(name_of_path("kernel/a/b.ko.xz"), "b");
    }
}
