//! The private apt setup shared by every Debian package the image carries (the kernel, the boot
//! loader): a sources list, list folder, archive cache and an empty dpkg status under the cache
//! directory, so nothing on the host changes.
//!
//! What does not live here: unpacking a package (see [`crate::kernel`] and
//! [`crate::bootloader`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::kernel::{find_deb, io_err, mkdir, FetchError};

/// How old the apt lists may be before they are refreshed.
pub const MAX_LIST_AGE: Duration = Duration::from_secs(12 * 3600);

/// The private apt setup.
pub(crate) struct Apt {
    root: PathBuf,
    options: Vec<String>,
}

impl Apt {
    pub(crate) fn new(cache_dir: &Path) -> Result<Self, FetchError> {
        let root = cache_dir.join("apt");
        mkdir(&root.join("lists/partial"))?;
        mkdir(&root.join("cache/archives/partial"))?;
        let sources = root.join("sources.list");
        let mut text = board::KERNEL_SOURCES.join("\n");
        text.push('\n');
        if fs::read_to_string(&sources).ok().as_deref() != Some(text.as_str()) {
            fs::write(&sources, text).map_err(|e| io_err(&sources, e))?;
            // New sources: the lists must be fetched again.
            let _ = fs::remove_file(root.join("lists.stamp"));
        }
        let d = |p: &str| root.join(p).display().to_string();
        let options = [
            format!("Dir::Etc::sourcelist={}", d("sources.list")),
            "Dir::Etc::sourceparts=-".to_owned(),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::Cache={}", d("cache")),
            "Dir::State::status=/dev/null".to_owned(),
            "Debug::NoLocking=1".to_owned(),
            "APT::Sandbox::User=root".to_owned(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect();
        Ok(Apt { root, options })
    }

    /// Runs an apt tool with the private options; returns its standard output.
    pub(crate) fn run(
        &self,
        tool: &str,
        args: &[&str],
        cwd: Option<&Path>,
    ) -> Result<String, FetchError> {
        let mut cmd = Command::new(tool);
        cmd.args(&self.options).args(args).env("LC_ALL", "C");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let command = format!(
            "{}{tool} {} {}",
            cwd.map(|d| format!("cd {} && ", d.display()))
                .unwrap_or_default(),
            self.options.join(" "),
            args.join(" ")
        );
        log::debug!("running {command}");
        let out = cmd.output().map_err(|source| FetchError::Spawn {
            command: command.clone(),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(FetchError::Command {
                command,
                status: out.status.to_string(),
                output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
                sources: self.root.join("sources.list"),
            });
        }
        Ok(stdout)
    }

    /// Refreshes the lists when `refresh` is set, when they are missing or older than
    /// [`MAX_LIST_AGE`].
    pub(crate) fn update(&self, refresh: bool) -> Result<(), FetchError> {
        let stamp = self.root.join("lists.stamp");
        let age = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if refresh || age.is_none_or(|a| a > MAX_LIST_AGE) {
            log::info!("updating the private apt lists (Debian trixie, trixie-security)");
            // Without --error-on=any, apt-get update exits 0 when it cannot reach a mirror.
            self.run("apt-get", &["--error-on=any", "update"], None)?;
            fs::write(&stamp, b"").map_err(|e| io_err(&stamp, e))?;
        }
        Ok(())
    }
}

/// Downloads the candidate version of `package` into `cache_dir/debs/` unless that version is
/// there already, and returns the `.deb`. When apt cannot be reached, the newest copy downloaded
/// earlier is used with a warning.
pub(crate) fn download(
    cache_dir: &Path,
    package: &str,
    refresh: bool,
) -> Result<PathBuf, FetchError> {
    let debs = cache_dir.join("debs");
    mkdir(&debs)?;
    let apt = Apt::new(cache_dir)?;
    let fetched = apt.update(refresh).and_then(|()| {
        let out = apt.run("apt-cache", &["policy", package], None)?;
        let version = candidate(&out).ok_or_else(|| FetchError::NoDeb {
            package: package.to_owned(),
            dir: debs.clone(),
        })?;
        // Debian file names spell an epoch's colon as %3a.
        let name = format!("{package}_{}_amd64.deb", version.replace(':', "%3a"));
        if !debs.join(&name).is_file() {
            log::info!("downloading {package} {version}");
            apt.run(
                "apt-get",
                &["download", &format!("{package}={version}")],
                Some(&debs),
            )?;
        }
        let path = debs.join(&name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(FetchError::NoDeb {
                package: package.to_owned(),
                dir: debs.clone(),
            })
        }
    });
    match fetched {
        Ok(path) => Ok(path),
        Err(err) => match find_deb(&debs, package)? {
            Some(path) => {
                log::warn!("{err}");
                log::warn!(
                    "could not fetch {package}: using {} downloaded earlier",
                    path.display()
                );
                Ok(path)
            }
            None => Err(err),
        },
    }
}

/// The `Candidate:` version in `apt-cache policy` output.
fn candidate(policy: &str) -> Option<String> {
    policy.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Candidate:")?.trim();
        (!v.is_empty() && v != "(none)").then(|| v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn candidate_version() {
        let out = "systemd-boot-efi:\n  Installed: (none)\n  Candidate: 257.13-1~deb13u1\n  Version table:\n";
        assert_eq!(super::candidate(out).as_deref(), Some("257.13-1~deb13u1"));
        assert_eq!(super::candidate("x:\n  Candidate: (none)\n"), None);
        assert_eq!(super::candidate(""), None);
    }
}
