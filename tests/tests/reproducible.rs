//! Building the image twice from the same inputs gives byte-identical outputs: the kernel,
//! initramfs, command line and manifest, the signed release manifest and its signature, the
//! flashable disk image and the release bundle (with the key the first build used:
//! `TANK_SIGNING_KEY` or the development key).

use std::path::PathBuf;

#[test]
fn image_build_is_reproducible() {
    let need = |var: &str| -> PathBuf {
        PathBuf::from(std::env::var_os(var).unwrap_or_else(|| {
            panic!("{var} is not set: run the tests with `cargo xtask test`, which builds the image first")
        }))
    };
    let cache = need("TANK_KERNEL_CACHE");
    let init = need("TANK_INIT_BINARY");
    let board = board::default_board();
    let built = tank_tests::image_dir(board.name);
    let again = tank_tests::fresh_run_dir("reproducible");
    image::build(&image::BuildRequest {
        board,
        init_binary: &init,
        cache_dir: &cache,
        out_dir: &again,
        version: env!("CARGO_PKG_VERSION"),
        signer: &image::sign::resolve_signer(None, &tank_tests::workspace_root().join("target"))
            .expect("the signing key the image was built with"),
        refresh: false,
    })
    .expect("second build");
    let version = env!("CARGO_PKG_VERSION");
    let disk = image::disk::image_name(version, board.name);
    let bundle = format!("{}.tar.gz", image::bundle::bundle_stem(version, board.name));
    for file in [
        "vmlinuz",
        "initramfs.img",
        "cmdline",
        "manifest.json",
        "release.json",
        "release.sig",
        disk.as_str(),
        bundle.as_str(),
    ] {
        let a = std::fs::read(built.join(file)).expect("first build output");
        let b = std::fs::read(again.join(file)).expect("second build output");
        assert!(
            a == b,
            "{file} differs between two builds of the same inputs"
        );
    }
    std::fs::remove_dir_all(&again).unwrap();
}
