//! The layout check on BTF written here from a table (what the kernel would carry), and on
//! the real ksmbd module of the cached kernel package.

use std::path::PathBuf;

use super::layout::{self, Enum, Member, Struct};
use super::*;

/// Writes non-split BTF describing `structs` (each member an array of bytes of its size, a
/// flexible member an empty array) and `enums`, as a module built from a header with exactly
/// these layouts would.
fn btf_for(structs: &[Struct], enums: &[Enum]) -> Vec<u8> {
    const INT: u32 = 1;
    const ARRAY: u32 = 3;
    const STRUCT: u32 = 4;
    const ENUM: u32 = 6;
    let mut strings = vec![0u8];
    let mut name = |s: &str| {
        let at = strings.len() as u32;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        at
    };
    let info = |kind: u32, vlen: usize| (kind << 24) | vlen as u32;
    let mut types: Vec<u32> = Vec::new();
    // 1: unsigned char, 2: unsigned int (the arrays' index type).
    types.extend([name("unsigned char"), info(INT, 0), 1, 8]);
    types.extend([name("unsigned int"), info(INT, 0), 4, 32]);
    let mut next_id = 3u32;
    for s in structs {
        let first_array = next_id;
        for m in s.members {
            types.extend([0, info(ARRAY, 0), 0, 1, 2, m.size as u32]);
            next_id += 1;
        }
        types.extend([name(s.name), info(STRUCT, s.members.len()), s.size as u32]);
        for (i, m) in s.members.iter().enumerate() {
            types.extend([name(m.name), first_array + i as u32, (m.offset * 8) as u32]);
        }
        next_id += 1;
    }
    for e in enums {
        types.extend([name(e.name), info(ENUM, e.values.len()), 4]);
        for (n, v) in e.values {
            types.extend([name(n), *v as u32]);
        }
    }
    let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut out = Vec::new();
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for w in [
        24u32,
        0,
        type_bytes.len() as u32,
        type_bytes.len() as u32,
        strings.len() as u32,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&type_bytes);
    out.extend_from_slice(&strings);
    out
}

fn kernel_as_written() -> Btf {
    Btf::from_bytes(&btf_for(layout::STRUCTS, layout::ENUMS)).unwrap()
}

/// The table with one structure replaced.
fn with_struct(replace: Struct) -> Vec<Struct> {
    layout::STRUCTS
        .iter()
        .map(|s| if s.name == replace.name { replace } else { *s })
        .collect()
}

#[test]
fn the_table_matches_btf_written_from_it() {
    assert_eq!(
        compare(&kernel_as_written(), layout::STRUCTS, layout::ENUMS),
        Vec::<String>::new()
    );
}

#[test]
fn a_mutated_table_fails_with_what_differs_and_what_to_do() {
    let btf = kernel_as_written();
    // The kernel's login response has `status` at 60; a table that says 62, lacks
    // `hash_sz` and has a member the kernel does not.
    let members: Vec<Member> = layout::login_response::LAYOUT
        .members
        .iter()
        .filter(|m| m.name != "hash_sz")
        .map(|m| match m.name {
            "status" => Member { offset: 62, ..*m },
            _ => *m,
        })
        .chain([Member {
            name: "session_key",
            offset: 150,
            size: 2,
        }])
        .collect();
    let mutated = with_struct(Struct {
        name: "ksmbd_login_response",
        size: 152,
        members: Box::leak(members.into_boxed_slice()),
    });
    // An event the table numbers differently, and one the kernel does not have.
    let mut events: Vec<(&'static str, u64)> = layout::ENUMS[0].values.to_vec();
    events.retain(|(n, _)| *n != "KSMBD_EVENT_LOGIN_RESPONSE_EXT");
    for (n, v) in &mut events {
        if *n == "KSMBD_EVENT_RPC_REQUEST" {
            *v = 20;
        }
    }
    events.push(("KSMBD_EVENT_FUTURE", 30));
    let enums = [
        Enum {
            name: "ksmbd_event",
            values: Box::leak(events.into_boxed_slice()),
        },
        layout::ENUMS[1],
    ];
    let module = PathBuf::from("kernel/fs/smb/server/ksmbd.ko.xz");
    let err = verdict(&btf, &module, "6.12.999+deb13-amd64", &mutated, &enums).unwrap_err();
    let LayoutError::Mismatch { differences, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        differences,
        &[
            "struct ksmbd_login_response is 148 bytes, the table says 152",
            "struct ksmbd_login_response: member `status` is at 60 (2 bytes), the table says at 62 (2 bytes)",
            "struct ksmbd_login_response: member `session_key` (at 150, 2 bytes in the table) is not in the module",
            "struct ksmbd_login_response: member `hash_sz` at 62 (2 bytes) is not in the table",
            "enum ksmbd_event: KSMBD_EVENT_RPC_REQUEST is 12, the table says 20",
            "enum ksmbd_event: KSMBD_EVENT_FUTURE (= 30 in the table) is not in the module",
            "enum ksmbd_event: KSMBD_EVENT_LOGIN_RESPONSE_EXT = 17 is not in the table",
        ]
    );
    let text = err.to_string();
    for needle in [
        "the ksmbd module of kernel 6.12.999+deb13-amd64",
        "kernel/fs/smb/server/ksmbd.ko.xz",
        "  - struct ksmbd_login_response: member `status` is at 60",
        "Update appliance/src/smb/layout.rs",
        "appliance/src/smb/ipc.rs for the new layout",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // A structure the kernel no longer has.
    let gone = [Struct {
        name: "ksmbd_heartbeat",
        size: 4,
        members: &[],
    }];
    assert_eq!(
        compare(&btf, &gone, &[]),
        ["struct ksmbd_heartbeat is not in the module"]
    );
}

#[test]
fn not_a_bzimage() {
    assert!(bzimage_payload(b"MZ not a kernel").is_err());
    let mut image = vec![0u8; 4096];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
    image[0x1f1] = 1;
    image[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
    image[0x24c..0x250].copy_from_slice(&100_000u32.to_le_bytes());
    let err = bzimage_payload(&image).unwrap_err();
    assert!(err.contains("past the end"), "{err}");
}

/// The cached kernel package, if `TANK_KERNEL_CACHE` names a cache it was fetched into.
fn cached_kernel() -> Option<crate::KernelPackage> {
    let Some(dir) = std::env::var_os("TANK_KERNEL_CACHE").filter(|d| !d.is_empty()) else {
        tank_test_gate::skip(
            "the ksmbd layout check on the real module",
            "set TANK_KERNEL_CACHE to the kernel cache (cargo xtask image fills target/kernel-cache)",
        );
        return None;
    };
    let current = PathBuf::from(dir).join("current.json");
    match std::fs::read(&current) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap()),
        Err(e) => {
            tank_test_gate::missing(
                "the ksmbd layout check on the real module",
                &format!("no kernel in the cache ({}: {e})", current.display()),
                "the kernel package (run cargo xtask image once)",
            );
            None
        }
    }
}

#[test]
fn the_shipped_ksmbd_has_the_layouts_of_the_table() {
    let Some(kernel) = cached_kernel() else {
        return;
    };
    let module = kernel.modules_dir.join("kernel/fs/smb/server/ksmbd.ko.xz");
    if let Err(e) = check(&kernel.vmlinuz, &module, &kernel.release) {
        panic!("{e}");
    }
    // The same module against a table with one member moved fails, naming it.
    let moved: Vec<Member> = layout::tree_connect_request::LAYOUT
        .members
        .iter()
        .map(|m| match m.name {
            "peer_addr" => Member { offset: 140, ..*m },
            _ => *m,
        })
        .collect();
    let table = with_struct(Struct {
        members: Box::leak(moved.into_boxed_slice()),
        ..layout::tree_connect_request::LAYOUT
    });
    let err = check_against(
        &kernel.vmlinuz,
        &module,
        &kernel.release,
        &table,
        layout::ENUMS,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "struct ksmbd_tree_connect_request: member `peer_addr` is at 136 (64 bytes), the table says at 140 (64 bytes)"
        ),
        "{err}"
    );
}
