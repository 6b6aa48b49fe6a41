//! The release bundle: `tank-<version>-<board>.tar.gz` holding the signed release manifest
//! and its signature, kernel, initramfs, command line, build manifest, disk image and a
//! `SHA256SUMS` file (for people; the signed manifest is what counts), under one folder of the
//! same name. Reproducible: entries in a fixed order, mode 0644, owner 0:0, time 0, and a gzip
//! header without a time or file name.
//!
//! What does not live here: building the files it carries ([`crate::build`]).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `tank-<version>-<board>` (the bundle's folder; the file adds `.tar.gz`).
pub fn bundle_stem(version: &str, board: &str) -> String {
    format!("tank-{version}-{board}")
}

/// A failure to write the bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read `{path}` for the bundle: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "cannot write the bundle `{path}`: {source}; check that the output folder is writable"
    )]
    Write { path: PathBuf, source: io::Error },
}

/// Writes `dir/<stem>.tar.gz` with the files `names` (in `dir`), in this order, then
/// `SHA256SUMS`. Returns the bundle's path.
pub fn write(dir: &Path, stem: &str, names: &[&str]) -> Result<PathBuf, BundleError> {
    let path = dir.join(format!("{stem}.tar.gz"));
    let tmp = dir.join(format!(".{stem}.tar.gz.partial"));
    let werr = |source: io::Error| BundleError::Write {
        path: path.clone(),
        source,
    };
    let file = fs::File::create(&tmp).map_err(werr)?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(io::BufWriter::new(file), flate2::Compression::new(6));
    let mut tar = tar::Builder::new(gz);
    let mut sums = String::new();
    let add = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{stem}/{name}"), data)
    };
    for name in names {
        let src = dir.join(name);
        let data = fs::read(&src).map_err(|source| BundleError::Read {
            path: src.clone(),
            source,
        })?;
        sums.push_str(&format!(
            "{}  {name}\n",
            crate::build::hex(&Sha256::digest(&data))
        ));
        add(&mut tar, name, &data).map_err(werr)?;
    }
    add(&mut tar, "SHA256SUMS", sums.as_bytes()).map_err(werr)?;
    let gz = tar.into_inner().map_err(werr)?;
    let mut out = gz.finish().map_err(werr)?;
    out.flush().map_err(werr)?;
    drop(out);
    fs::rename(&tmp, &path).map_err(werr)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn listing_checksums_and_reproducibility() {
        let dir = std::env::temp_dir().join(format!("tank-bundle-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("vmlinuz"), b"kernel").unwrap();
        fs::write(dir.join("manifest.json"), b"{}\n").unwrap();
        let names = ["vmlinuz", "manifest.json"];
        let a = fs::read(write(&dir, "tank-0.1.0-b", &names).unwrap()).unwrap();
        let b = fs::read(write(&dir, "tank-0.1.0-b", &names).unwrap()).unwrap();
        assert!(a == b, "two bundles of the same files differ");
        // gzip header: no modification time.
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
        let mut listing = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            let mut data = String::new();
            entry.read_to_string(&mut data).unwrap();
            listing.push((
                entry.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                data,
            ));
        }
        let sums = format!(
            "{}  vmlinuz\n{}  manifest.json\n",
            crate::build::hex(&Sha256::digest(b"kernel")),
            crate::build::hex(&Sha256::digest(b"{}\n"))
        );
        assert_eq!(
            listing,
            vec![
                ("tank-0.1.0-b/vmlinuz".into(), 0o644, 0, 0, "kernel".into()),
                (
                    "tank-0.1.0-b/manifest.json".into(),
                    0o644,
                    0,
                    0,
                    "{}\n".into()
                ),
                ("tank-0.1.0-b/SHA256SUMS".into(), 0o644, 0, 0, sums),
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
