//! Tests on the real Debian kernel package.
//!
//! Gated by `TANK_KERNEL_CACHE`: a cache directory where `image::kernel::fetch` works (it
//! downloads about 110 MB the first time). Without it the test records a skip (see
//! `tank-test-gate`); `cargo xtask test` always sets it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::modules::ModuleIndex;

fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("TANK_KERNEL_CACHE") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            tank_test_gate::skip(
                "the real kernel suite",
                "set TANK_KERNEL_CACHE to a cache directory to test against the real Debian \
                 kernel package (downloads ~110 MB with apt on first use)",
            );
            None
        }
    }
}

#[test]
fn real_kernel_closure_and_reproducible_build() {
    let Some(cache) = cache_dir() else { return };
    let t = Instant::now();
    let kernel = image::kernel::fetch(&cache, false).expect("fetch the kernel package");
    eprintln!(
        "fetch+extract: {:.2?} ({} {} {})",
        t.elapsed(),
        kernel.package,
        kernel.version,
        kernel.release
    );
    assert!(kernel.release.starts_with("6.12."), "{}", kernel.release);
    assert!(kernel.vmlinuz.is_file());

    let index_path = ModuleIndex::cache_path(&cache, &kernel.release);
    let t = Instant::now();
    let scanned = ModuleIndex::scan(&kernel.release, &kernel.modules_dir).expect("scan modules");
    eprintln!(
        "index scan (cold): {:.2?}, {} modules, {} builtin",
        t.elapsed(),
        scanned.modules.len(),
        scanned.builtin.len()
    );
    assert!(scanned.modules.len() > 4000);
    // sha256 is builtin on 6.12.
    assert!(scanned.builtin.contains_key("sha256_generic"));
    let _ = std::fs::remove_file(&index_path);
    ModuleIndex::load_or_scan(&cache, &kernel.release, &kernel.modules_dir)
        .expect("index and cache");
    let t = Instant::now();
    let index = ModuleIndex::load_or_scan(&cache, &kernel.release, &kernel.modules_dir)
        .expect("cached index");
    eprintln!("index load (cached): {:.2?}", t.elapsed());
    assert_eq!(index, scanned);

    let board = board::find("qemu-x86_64").expect("qemu board");
    let closure = index
        .closure(board.image_modules())
        .expect("closure of qemu-x86_64");
    let names: Vec<&str> = closure.modules.iter().map(|m| m.name.as_str()).collect();
    eprintln!("closure: {} modules: {}", names.len(), names.join(" "));
    eprintln!("builtin: {}", closure.builtin.join(" "));
    for m in [
        "btrfs",
        "ksmbd",
        "nfsd",
        "virtio_scsi",
        "nls_utf8",
        "sd_mod",
        "virtio_net",
        "virtio_rng",
    ] {
        assert!(closure.get(m).is_some(), "{m} missing from the closure");
    }
    let pos = |n: &str| closure.position(n).unwrap_or_else(|| panic!("{n} missing"));
    assert!(
        pos("crc32c_generic") < pos("btrfs"),
        "crc32c_generic must load before btrfs"
    );
    // Each hard dependency loads before its user.
    for (i, m) in closure.modules.iter().enumerate() {
        for d in &m.depends {
            if let Some(j) = closure.position(d) {
                assert!(j < i, "{d} must load before {}", m.name);
            }
        }
    }
    // ksmbd's crypto soft dependencies are all carried (or builtin), before ksmbd.
    let ksmbd = closure.get("ksmbd").expect("ksmbd");
    assert!(!ksmbd.softdeps.is_empty(), "ksmbd declares softdeps");
    for s in &ksmbd.softdeps {
        let mut kind = "";
        for word in s.split_whitespace() {
            if let Some(k) = word.strip_suffix(':') {
                kind = k;
                continue;
            }
            let dep = word;
            // Whatever the kernel has under that name (or its `crypto-` alias) must be carried,
            // and a `pre:` one must load before ksmbd.
            let wanted = index
                .closure([dep])
                .or_else(|_| index.closure([format!("crypto-{dep}").as_str()]));
            match wanted {
                Ok(c) => {
                    for m in &c.modules {
                        let at = closure
                            .position(&m.name)
                            .unwrap_or_else(|| panic!("ksmbd softdep {dep}: {} missing", m.name));
                        if kind == "pre" {
                            assert!(at < pos("ksmbd"), "{} must load before ksmbd", m.name);
                        }
                    }
                    for b in &c.builtin {
                        assert!(closure.builtin.contains(b), "builtin {b} not recorded");
                    }
                    let mods: Vec<&str> = c.modules.iter().map(|m| m.name.as_str()).collect();
                    eprintln!(
                        "ksmbd softdep {kind}: {dep}: modules {mods:?}, builtin {:?}",
                        c.builtin
                    );
                }
                Err(_) => eprintln!(
                    "ksmbd softdep {kind}: {dep}: no module or builtin by that name, skipped"
                ),
            }
        }
    }
    for crypto in ["gcm", "ccm", "cmac", "crc32_generic", "ecb", "md5", "hmac"] {
        assert!(
            closure.get(crypto).is_some() || closure.builtin.iter().any(|b| b == crypto),
            "{crypto} neither carried nor builtin"
        );
    }
    let files = closure.depmod_files();
    assert!(files
        .dep
        .lines()
        .any(|l| l.starts_with("kernel/fs/btrfs/btrfs.ko:")));
    assert!(
        files.alias.contains(" fs-nfsd nfsd\n") || files.alias.contains("alias fs-nfsd nfsd\n")
    );

    // Reproducible build.
    let tmp = std::env::temp_dir().join(format!("tank-image-real-{}", std::process::id()));
    let init = tmp.join("init");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(&init, b"\x7fELF dummy init for the reproducibility test").unwrap();
    let signer = image::sign::Signer::from_secret([9; 32], image::sign::KeyKind::Development);
    let build = |out: &Path| {
        let t = Instant::now();
        let m = image::build(&image::BuildRequest {
            board,
            init_binary: &init,
            cache_dir: &cache,
            out_dir: out,
            version: "0.0.0-test",
            signer: &signer,
            refresh: false,
        })
        .expect("build");
        eprintln!("build: {:.2?}", t.elapsed());
        m
    };
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let ma = build(&a);
    let mb = build(&b);
    assert_eq!(ma, mb);
    for f in [
        "initramfs.img",
        "vmlinuz",
        "cmdline",
        "manifest.json",
        "release.json",
        "release.sig",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
    assert_eq!(image::Manifest::load(&a.join("manifest.json")).unwrap(), ma);
    let size = ma.file("initramfs.img").unwrap().size;
    eprintln!(
        "initramfs: {size} bytes compressed ({:.2} MiB), {} bytes uncompressed, {} modules",
        size as f64 / 1048576.0,
        ma.initramfs_uncompressed_size,
        ma.modules.len()
    );
    assert!(
        size < 8 * 1024 * 1024,
        "initramfs over the 8 MiB budget: {size}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}
