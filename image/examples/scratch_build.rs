//! Temporary: build an image from the command line (cache, out, init).
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let board = board::default_board();
    let t = std::time::Instant::now();
    let r = image::build(&image::BuildRequest {
        board,
        init_binary: std::path::Path::new(&a[3]),
        cache_dir: std::path::Path::new(&a[1]),
        out_dir: std::path::Path::new(&a[2]),
        version: "0.1.0",
        refresh: a.len() > 4,
    });
    match r {
        Ok(m) => eprintln!("ok in {:.2?}: {}", t.elapsed(), m.file("initramfs.img").unwrap().size),
        Err(e) => eprintln!("error: {e}"),
    }
}
