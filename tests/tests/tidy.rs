//! Checks that keep the code honest, run as ordinary tests: the init's non-test code has no
//! `unwrap`, `expect` or `panic!` (PID 1 turns errors into messages, never into a crash), every
//! module of every crate opens with a module doc, and every board has a boot test.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    tank_tests::workspace_root()
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "target") {
                    continue;
                }
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Files brought in with `include!` rather than as modules (they carry no module doc).
fn included_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for piece in text.split("include!(\"").skip(1) {
            if let Some(name) = piece.split('"').next() {
                if let Some(dir) = f.parent() {
                    out.push(dir.join(name));
                }
            }
        }
    }
    out
}

/// The files that are test modules: declared as `mod NAME;` right after `#[cfg(test)]`.
fn test_module_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if *line != "#[cfg(test)]" {
                continue;
            }
            // Skip further attributes to the item.
            let Some(item) = lines[i + 1..].iter().find(|l| !l.starts_with("#[")) else {
                continue;
            };
            let item = item
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            let Some(name) = item.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let dir = f.parent().unwrap_or(Path::new("."));
            let base = if ["mod", "main", "lib"].contains(&stem) {
                dir.to_path_buf()
            } else {
                dir.join(stem)
            };
            out.push(base.join(format!("{name}.rs")));
            out.push(base.join(name).join("mod.rs"));
        }
    }
    out
}

/// The lines of `text` outside `#[cfg(test)]` items, with their line numbers (from 1). An
/// item is skipped from its attribute to the brace that closes it.
fn non_test_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut depth: i64 = 0;
    let mut skip_until: Option<i64> = None;
    let mut pending = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        let delta = t.matches('{').count() as i64 - t.matches('}').count() as i64;
        if let Some(level) = skip_until {
            depth += delta;
            if depth <= level {
                skip_until = None;
            }
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            pending = true;
            continue;
        }
        if pending && !t.starts_with("#[") {
            pending = false;
            if t.ends_with(';') {
                // `mod tests;` or a `use`: a one-line item.
                continue;
            }
            skip_until = Some(depth);
            depth += delta;
            if depth <= skip_until.unwrap_or(0) && t.contains('}') {
                skip_until = None;
            }
            continue;
        }
        depth += delta;
        out.push((n + 1, line));
    }
    out
}

const FORBIDDEN: &[&str] = &[
    ".unwrap()",
    ".expect(",
    "panic!(",
    "unreachable!(",
    "todo!(",
    "unimplemented!(",
];

#[test]
fn the_init_has_no_unwrap_expect_or_panic_outside_tests() {
    // The init and the crates linked into it.
    let mut files = rust_files(&root().join("appliance/src"));
    files.extend(rust_files(&root().join("appliance/probe/src")));
    files.extend(rust_files(&root().join("appliance/passthrough/src")));
    let tests = test_module_files(&files);
    let included = included_files(&files);
    let mut found = Vec::new();
    for f in &files {
        if tests.contains(f) || included.contains(f) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in non_test_lines(&text) {
            let code = line.trim();
            if code.starts_with("//") {
                continue;
            }
            if FORBIDDEN.iter().any(|w| code.contains(w)) {
                found.push(format!("{}:{n}: {code}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "PID 1 must turn errors into messages, not panics; found:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_looks_for() {
    // A positive control for the scan above: forbidden calls in plain code are seen, those in
    // test items are not.
    let text = "fn a() {\n    x.unwrap();\n}\n#[cfg(test)]\nmod tests {\n    fn b() {\n        y.unwrap();\n    }\n}\nfn c() {\n    panic!(\"z\");\n}\n";
    let seen: Vec<usize> = non_test_lines(text)
        .into_iter()
        .filter(|(_, l)| FORBIDDEN.iter().any(|w| l.contains(w)))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(seen, vec![2, 11]);
}

#[test]
fn every_module_has_a_doc_comment() {
    let mut files = Vec::new();
    for krate in [
        "appliance",
        "appliance/probe",
        "appliance/passthrough",
        "board",
        "image",
        "xtask",
        "tests",
        "tests/agent",
        "tests/gate",
    ] {
        for sub in ["src", "tests"] {
            files.extend(rust_files(&root().join(krate).join(sub)));
        }
    }
    files.sort();
    files.dedup();
    let included = included_files(&files);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !included.contains(f))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` doc comment:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_board_has_a_boot_test() {
    let sources: Vec<String> = rust_files(&root().join("tests/tests"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for b in board::BOARDS {
        let constant = b.name.to_uppercase().replace('-', "_");
        let booted = sources
            .iter()
            .any(|s| s.contains("boot_board(") && s.contains(&format!("board::{constant}")))
            || (b.name == board::default_board().name
                && sources.iter().any(|s| s.contains("boot_default(")));
        assert!(
            booted,
            "board {} has no boot test in tests/tests (boot it with boot_board(.., &board::{constant}, ..))",
            b.name
        );
    }
}
