//! Tests of the whole pipe server, through [`Pipes`] and [`Pipes::dispatch`]: golden byte
//! vectors for every call, fragment reassembly and splitting, the protocol errors, the limits,
//! and a fuzz test.
//!
//! The golden vectors (`golden_vectors.rs`) were cross-checked against two independent
//! implementations. impacket 0.13.1 (Python) built every request with its srvsvc/wkssvc NDR
//! classes and PDU structures (its random referent ids and 0xbf padding included, and its
//! own request fragmentation in `enum1_fragments`), and decoded every expected answer with
//! its BIND_ACK, RESPONSE and call-response classes to the names, types, comments, counts,
//! resume handles and status codes this share list implies; its DCERPC_v5 client also ran
//! against this module end to end (bind, each call at each level, 63 and 203 shares split
//! into 1024-byte fragments read back through transceive and reads, requests in 16-byte
//! fragments). Samba 4.17's ndrdump (the pidl-generated NDR smbclient uses) parsed every
//! request and response stub and every PDU this server sends (`ncacn_packet`), and its
//! re-encoding of each response (`--validate`) was byte for byte the vector here. That
//! tooling is not part of the repository.

use super::pdu::{self, fault, nak, pfc, ptype, Header};
use super::*;

/// The share list and server the golden vectors were made with.
fn fixture() -> Context {
    fixture_with(0)
}

/// The three shares of [`fixture`] plus `n` more with non-ASCII comments.
fn fixture_with(n: usize) -> Context {
    let mut shares = vec![
        ShareListing {
            name: "IPC$".into(),
            comment: "IPC Service (Tank)".into(),
            kind: ShareKind::Ipc,
        },
        ShareListing {
            name: "media".into(),
            comment: "Films and music".into(),
            kind: ShareKind::Disk,
        },
        ShareListing {
            name: "backup".into(),
            comment: String::new(),
            kind: ShareKind::Disk,
        },
    ];
    for i in 0..n {
        shares.push(ShareListing {
            name: format!("share{i:03}"),
            comment: format!("Dataset number {i} — ünïcödé"),
            kind: ShareKind::Disk,
        });
    }
    Context {
        shares,
        server: ServerInfo {
            name: "TANK".into(),
            workgroup: "WORKGROUP".into(),
            comment: "Tank NAS".into(),
            version: (6, 1),
        },
    }
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Everything a pipe has to read, one fragment per read.
fn drain(pipes: &mut Pipes, handle: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        match pipes.read(handle, ksmbd::MAX_PAYLOAD) {
            Ok(f) => out.push(f),
            Err(PipeError::NothingToRead(_) | PipeError::Broken { .. }) => return out,
            Err(e) => panic!("unexpected read error {e}"),
        }
    }
}

/// One golden scenario: PDUs written to a fresh pipe, and the fragments each write queues.
struct Golden {
    name: &'static str,
    pipe: PipeName,
    response_fragment: usize,
    /// (PDUs written, one write each; fragments then read back).
    exchanges: &'static [(&'static [&'static str], &'static [&'static str])],
}

const BIND_SRVSVC: &str = "05000b03100000004800000001000000b810b810000000000100000000000100c84f324b7016d30112785a47bf6ee18803000000045d888aeb1cc9119fe808002b10486002000000";
const ENUM1: &str = "050000031000000060000000020000004800000000000f00b18800000c000000000000000c0000005c005c003100320037002e0030002e0030002e00310000000100000001000000718c00000000000000000000ffffffff3584000000000000";

include!("golden_vectors.rs");

/// The fragments a golden scenario's `exchange`th write queued.
fn golden_answer(name: &str, exchange: usize) -> &'static [&'static str] {
    GOLDEN.iter().find(|g| g.name == name).unwrap().exchanges[exchange].1
}

/// The `i`th PDU a golden scenario's `exchange`th write holds.
fn golden_request(name: &str, exchange: usize, i: usize) -> Vec<u8> {
    hex(GOLDEN.iter().find(|g| g.name == name).unwrap().exchanges[exchange].0[i])
}

/// Runs a golden scenario, writing each exchange's PDUs as `writes` cuts them, and returns
/// the fragments each exchange queued, in hex.
fn run_golden(g: &Golden, writes: impl Fn(&[Vec<u8>]) -> Vec<Vec<u8>>) -> Vec<Vec<String>> {
    let fixture = fixture();
    let limits = Limits {
        response_fragment: g.response_fragment,
        ..Limits::default()
    };
    let mut pipes = Pipes::new(limits);
    pipes.open(1, g.pipe).unwrap();
    let mut got = Vec::new();
    for (pdus, _) in g.exchanges {
        let pdus: Vec<Vec<u8>> = pdus.iter().map(|p| hex(p)).collect();
        for chunk in writes(&pdus) {
            pipes.write(1, &chunk, &fixture).unwrap();
        }
        got.push(drain(&mut pipes, 1).iter().map(|f| to_hex(f)).collect());
    }
    got
}

#[test]
fn golden_vectors() {
    for g in GOLDEN {
        let expected: Vec<Vec<String>> = g
            .exchanges
            .iter()
            .map(|(_, e)| e.iter().map(|s| s.to_string()).collect())
            .collect();
        // As the client sent them: one PDU per write.
        let as_sent = run_golden(g, <[Vec<u8>]>::to_vec);
        assert_eq!(as_sent, expected, "golden scenario {}", g.name);
        // A pipe is a byte stream: the same bytes cut anyhow give the same answers.
        let cut = |n: usize| {
            move |pdus: &[Vec<u8>]| -> Vec<Vec<u8>> {
                pdus.concat().chunks(n).map(<[u8]>::to_vec).collect()
            }
        };
        for n in [1, 7, 4096] {
            assert_eq!(
                run_golden(g, cut(n)),
                expected,
                "{} in {n}-byte writes",
                g.name
            );
        }
    }
}

#[test]
fn golden_responses_are_well_formed() {
    for g in GOLDEN {
        for (_, expected) in g.exchanges {
            for (i, f) in expected.iter().enumerate() {
                let bytes = hex(f);
                let h = Header::parse(&bytes).unwrap();
                assert_eq!(usize::from(h.frag_len), bytes.len(), "{}", g.name);
                assert!(bytes.len() <= g.response_fragment.max(116), "{}", g.name);
                if h.ptype == ptype::RESPONSE {
                    assert_eq!(h.flags & pfc::FIRST_FRAG != 0, i == 0, "{}", g.name);
                    assert_eq!(h.flags & pfc::LAST_FRAG != 0, i + 1 == expected.len());
                }
            }
        }
    }
}

/// A pipe bound to srvsvc (or wkssvc) with the BIND_ACK read.
fn bound(pipes: &mut Pipes, handle: u32, pipe: PipeName, fixture: &Context) {
    pipes.open(handle, pipe).unwrap();
    let bind = match pipe {
        PipeName::Wkssvc => golden_request("bind_wkssvc", 0, 0),
        _ => hex(BIND_SRVSVC),
    };
    pipes.write(handle, &bind, fixture).unwrap();
    let ack = drain(pipes, handle);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0][2], ptype::BIND_ACK);
}

/// The stub carried by a run of RESPONSE fragments, checking the fragment rules on the way.
fn reassemble(frags: &[Vec<u8>], max_frag: usize) -> Vec<u8> {
    let mut stub = Vec::new();
    let total: usize = frags.iter().map(|f| f.len() - 24).sum();
    for (i, f) in frags.iter().enumerate() {
        let h = Header::parse(f).unwrap();
        assert_eq!(h.ptype, ptype::RESPONSE);
        assert_eq!(usize::from(h.frag_len), f.len());
        assert!(f.len() <= max_frag, "fragment of {} bytes", f.len());
        assert_eq!(h.flags & pfc::FIRST_FRAG != 0, i == 0);
        let last = i + 1 == frags.len();
        assert_eq!(h.flags & pfc::LAST_FRAG != 0, last);
        if !last {
            assert_eq!(
                (f.len() - 24) % 8,
                0,
                "non-last fragment stub not a multiple of 8"
            );
        }
        let alloc_hint = u32::from_le_bytes(f[16..20].try_into().unwrap()) as usize;
        assert_eq!(alloc_hint, total - stub.len());
        stub.extend_from_slice(&f[24..]);
    }
    stub
}

#[test]
fn large_listings_are_split_into_fragments_of_1024_bytes() {
    let fixture = fixture_with(200);
    let mut pipes = Pipes::new(Limits::default());
    bound(&mut pipes, 1, PipeName::Srvsvc, &fixture);
    pipes.write(1, &hex(ENUM1), &fixture).unwrap();
    let frags = drain(&mut pipes, 1);
    let stub = reassemble(&frags, 1024);
    let request_stub = &hex(ENUM1)[24..];
    let direct = srvsvc::call(15, request_stub, &fixture).unwrap();
    assert_eq!(stub, direct);
    // 203 entries of about 100 bytes: many fragments, each within what Windows' 1024-byte
    // transceive takes.
    assert!(frags.len() > 20, "{} fragments", frags.len());
    // The count and status at the end of the stub.
    assert_eq!(
        &stub[stub.len() - 16..stub.len() - 12],
        &203u32.to_le_bytes()
    );
    assert_eq!(&stub[stub.len() - 4..], &[0, 0, 0, 0]);
}

#[test]
fn transceive_returns_the_first_fragment_and_reads_the_rest() {
    let fixture = fixture_with(40);
    let mut pipes = Pipes::new(Limits::default());
    pipes.open(3, PipeName::Srvsvc).unwrap();
    let ack = pipes
        .transceive(3, &hex(BIND_SRVSVC), 4096, &fixture)
        .unwrap();
    assert_eq!(ack[2], ptype::BIND_ACK);
    let first = pipes.transceive(3, &hex(ENUM1), 4096, &fixture).unwrap();
    assert_eq!(first.len(), 1024);
    let mut frags = vec![first];
    frags.extend(drain(&mut pipes, 3));
    assert!(frags.len() > 1);
    reassemble(&frags, 1024);
    assert_eq!(pipes.buffered(3), Some(0));
}

#[test]
fn a_short_read_leaves_the_rest_of_the_fragment() {
    let fixture = fixture();
    let mut pipes = Pipes::new(Limits::default());
    pipes.open(1, PipeName::Srvsvc).unwrap();
    pipes.write(1, &hex(BIND_SRVSVC), &fixture).unwrap();
    let head = pipes.read(1, 10).unwrap();
    let tail = pipes.read(1, 4096).unwrap();
    assert_eq!((head.len(), tail.len()), (10, 58));
    assert_eq!([head, tail].concat(), hex(GOLDEN[0].exchanges[0].1[0]));
    assert_eq!(pipes.read(1, 4096), Err(PipeError::NothingToRead(1)));
}

/// Writes PDUs to a fresh srvsvc pipe (after a BIND unless `bind` is false) and returns what
/// the last write queued, and the pipe.
fn answer(pdus: &[Vec<u8>], bind: bool) -> (Vec<Vec<u8>>, Pipes) {
    let fixture = fixture();
    let mut pipes = Pipes::new(Limits::default());
    if bind {
        bound(&mut pipes, 1, PipeName::Srvsvc, &fixture);
    } else {
        pipes.open(1, PipeName::Srvsvc).unwrap();
    }
    for p in pdus {
        pipes.write(1, p, &fixture).unwrap();
    }
    (drain(&mut pipes, 1), pipes)
}

fn is_broken(pipes: &mut Pipes) -> bool {
    let fixture = fixture();
    matches!(
        pipes.write(1, &hex(ENUM1), &fixture),
        Err(PipeError::Broken { .. })
    )
}

#[test]
fn protocol_errors_get_the_fault_or_nak_windows_and_samba_send() {
    let enum1 = hex(ENUM1);
    let bind = hex(BIND_SRVSVC);

    // A REQUEST before any BIND.
    let (out, mut pipes) = answer(std::slice::from_ref(&enum1), false);
    assert_eq!(out, [pdu::bind_nak(2, nak::PROTOCOL_VERSION_NOT_SUPPORTED)]);
    assert!(is_broken(&mut pipes));

    // A second BIND.
    let (out, mut pipes) = answer(std::slice::from_ref(&bind), true);
    assert_eq!(out, [pdu::bind_nak(1, nak::NOT_SPECIFIED)]);
    assert!(is_broken(&mut pipes));

    // A BIND with an auth trailer.
    let mut auth = bind.clone();
    auth[10] = 8;
    let (out, _) = answer(&[auth], false);
    assert_eq!(
        out,
        [pdu::bind_nak(1, nak::AUTHENTICATION_TYPE_NOT_RECOGNIZED)]
    );

    // A big-endian BIND: its header is read big-endian to find the call id.
    let mut be = bind.clone();
    be[4] = 0;
    be.swap(8, 9);
    be[12..16].reverse();
    let (out, _) = answer(&[be], false);
    assert_eq!(out, [pdu::bind_nak(1, nak::NOT_SPECIFIED)]);

    // RPC version 4 in a BIND.
    let mut v4 = bind.clone();
    v4[0] = 4;
    let (out, _) = answer(&[v4], false);
    assert_eq!(out, [pdu::bind_nak(1, nak::PROTOCOL_VERSION_NOT_SUPPORTED)]);

    // An unknown presentation context: the association stays usable.
    let mut ctx5 = enum1.clone();
    ctx5[20] = 5;
    let (out, mut pipes) = answer(&[ctx5], true);
    assert_eq!(out, [pdu::fault(2, pfc::DID_NOT_EXECUTE, 5, fault::UNK_IF)]);
    assert!(!is_broken(&mut pipes));

    // An opnum srvsvc has but this server does not serve, and one it does not have.
    for opnum in [14u8, 99] {
        let mut op = enum1.clone();
        op[22] = opnum;
        let (out, _) = answer(&[op], true);
        assert_eq!(
            out,
            [pdu::fault(2, pfc::DID_NOT_EXECUTE, 0, fault::OP_RNG_ERROR)]
        );
    }

    // A stub that ends early.
    let mut short = enum1[..60].to_vec();
    short[8] = 60;
    let (out, mut pipes) = answer(&[short], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::NDR)]);
    assert!(!is_broken(&mut pipes));

    // A big-endian REQUEST.
    let mut be = enum1.clone();
    be[4] = 0;
    be.swap(8, 9);
    be[12..16].reverse();
    let (out, _) = answer(&[be], true);
    assert_eq!(out, [pdu::fault(2, pfc::DID_NOT_EXECUTE, 0, fault::NDR)]);

    // A REQUEST with an auth trailer.
    let mut auth = enum1.clone();
    auth[10] = 8;
    let (out, mut pipes) = answer(&[auth], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::ACCESS_DENIED)]);
    assert!(is_broken(&mut pipes));

    // A later fragment without its first.
    let frags = fragments_of_enum1();
    let (out, mut pipes) = answer(&[frags[1].clone()], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::PROTO_ERROR)]);
    assert!(is_broken(&mut pipes));

    // A new call starting inside a fragmented one: the call in progress is faulted.
    let mut other = enum1.clone();
    other[12] = 9;
    let (out, _) = answer(&[frags[0].clone(), other], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::PROTO_ERROR)]);

    // A later fragment that changes the opnum.
    let mut changed = frags[1].clone();
    changed[22] = 16;
    let (out, _) = answer(&[frags[0].clone(), changed], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::PROTO_ERROR)]);

    // A fragment length shorter than a header: the stream cannot be followed any more.
    let mut tiny = enum1.clone();
    tiny[8] = 10;
    let (out, mut pipes) = answer(&[tiny], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::PROTO_ERROR)]);
    assert!(is_broken(&mut pipes));

    // A PDU type only servers send.
    let mut resp = enum1.clone();
    resp[2] = ptype::RESPONSE;
    let (out, _) = answer(&[resp], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::PROTO_ERROR)]);

    // AUTH3 on an association without authentication.
    let mut auth3 = enum1.clone();
    auth3[2] = ptype::AUTH3;
    let (out, _) = answer(&[auth3], true);
    assert_eq!(out, [pdu::fault(2, 0, 0, fault::PROTO_ERROR)]);
}

#[test]
fn cancel_and_orphaned_are_ignored() {
    for t in [ptype::CO_CANCEL, ptype::ORPHANED] {
        let pdu = [5, 0, t, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0];
        let (out, mut pipes) = answer(&[pdu.to_vec()], true);
        assert!(out.is_empty());
        assert!(!is_broken(&mut pipes));
    }
}

/// The enum1 request as impacket fragments it with a 16-byte fragment size.
fn fragments_of_enum1() -> Vec<Vec<u8>> {
    (0..5)
        .map(|i| golden_request("enum1_fragments", 1, i))
        .collect()
}

#[test]
fn bind_results_per_context() {
    let fixture = fixture();
    // A srvsvc BIND on the samr pipe: the interface is not served there.
    let mut pipes = Pipes::new(Limits::default());
    pipes.open(1, PipeName::Samr).unwrap();
    pipes.write(1, &hex(BIND_SRVSVC), &fixture).unwrap();
    let ack = drain(&mut pipes, 1).remove(0);
    assert_eq!(ack[2], ptype::BIND_ACK);
    // The secondary address names the samr pipe; the one result is provider_rejection,
    // abstract_syntax_not_supported.
    assert_eq!(&ack[26..37], b"\\PIPE\\samr\0");
    assert_eq!(&ack[40..48], &[1, 0, 0, 0, 2, 0, 1, 0]);
    // Requests on it fail cleanly.
    pipes.write(1, &hex(ENUM1), &fixture).unwrap();
    assert_eq!(
        drain(&mut pipes, 1),
        [pdu::fault(2, pfc::DID_NOT_EXECUTE, 0, fault::UNK_IF)]
    );

    // Only NDR64 offered: the interface is known but the transfer syntax is not.
    let mut ndr64_only = hex(BIND_SRVSVC);
    ndr64_only[52..72].copy_from_slice(&hex("33057171babe37498319b5dbef9ccc3601000000"));
    let mut pipes = Pipes::new(Limits::default());
    pipes.open(1, PipeName::Srvsvc).unwrap();
    pipes.write(1, &ndr64_only, &fixture).unwrap();
    let ack = drain(&mut pipes, 1).remove(0);
    assert_eq!(&ack[44..48], &[2, 0, 2, 0]);

    // A client-chosen association group is kept.
    let mut group = hex(BIND_SRVSVC);
    group[20..24].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    let mut pipes = Pipes::new(Limits::default());
    pipes.open(1, PipeName::Srvsvc).unwrap();
    pipes.write(1, &group, &fixture).unwrap();
    let ack = drain(&mut pipes, 1).remove(0);
    assert_eq!(&ack[20..24], &0x1234_5678u32.to_le_bytes());

    // Fragment sizes: min of the client's two, at least 2048, at most 4096, a multiple of 8.
    for (xmit, recv, expect) in [
        (4280u16, 4280u16, 4096u16),
        (5840, 2100, 2096),
        (1432, 4280, 2048),
        (3001, 3001, 3000),
    ] {
        let mut b = hex(BIND_SRVSVC);
        b[16..18].copy_from_slice(&xmit.to_le_bytes());
        b[18..20].copy_from_slice(&recv.to_le_bytes());
        let mut pipes = Pipes::new(Limits::default());
        pipes.open(1, PipeName::Srvsvc).unwrap();
        pipes.write(1, &b, &fixture).unwrap();
        let ack = drain(&mut pipes, 1).remove(0);
        assert_eq!(
            &ack[16..20],
            &[expect.to_le_bytes(), expect.to_le_bytes()].concat()
        );
    }
}

#[test]
fn alter_context_outcomes() {
    let fixture = fixture();
    let alter = golden_request("alter_ctx1", 1, 0);
    // wkssvc is not served on the srvsvc pipe.
    let mut wkssvc = alter.clone();
    wkssvc[32..52].copy_from_slice(&hex("98d0ff6b12a11036983346c3f87e345a01000000"));
    let (out, mut pipes) = answer(&[wkssvc], true);
    assert_eq!(out[0][2], ptype::ALTER_CONTEXT_RESP);
    assert_eq!(&out[0][28..36], &[1, 0, 0, 0, 2, 0, 1, 0]);
    assert!(!is_broken(&mut pipes));
    // Context 0 proposed again, as bound: accepted again.
    let mut again = alter.clone();
    again[28] = 0;
    let (out, _) = answer(&[again.clone()], true);
    assert_eq!(&out[0][28..36], &[1, 0, 0, 0, 0, 0, 0, 0]);
    // srvsvc 9.0 is no interface here: a rejection, not an error.
    let mut other_version = again;
    other_version[48] = 9;
    let (out, mut pipes) = answer(&[other_version], true);
    assert_eq!(&out[0][28..36], &[1, 0, 0, 0, 2, 0, 1, 0]);
    // The call on the new context from the golden scenario still works on context 0.
    let server100 = golden_request("alter_ctx1", 2, 0);
    let mut on_ctx0 = server100.clone();
    on_ctx0[20] = 0;
    pipes.write(1, &on_ctx0, &fixture).unwrap();
    assert_eq!(drain(&mut pipes, 1)[0][2], ptype::RESPONSE);
    // An ALTER_CONTEXT before the BIND.
    let (out, _) = answer(&[alter], false);
    assert_eq!(out, [pdu::bind_nak(2, nak::PROTOCOL_VERSION_NOT_SUPPORTED)]);
}

#[test]
fn limits_hold() {
    let fixture = fixture();
    let limits = Limits {
        max_pipes: 2,
        max_write: 100,
        max_request: 40,
        max_output: 200,
        ..Limits::default()
    };
    let mut pipes = Pipes::new(limits);
    pipes.open(1, PipeName::Srvsvc).unwrap();
    pipes.open(2, PipeName::Srvsvc).unwrap();
    assert_eq!(
        pipes.open(3, PipeName::Srvsvc),
        Err(PipeError::TooManyPipes { handle: 3, open: 2 })
    );
    // Reopening a handle starts it afresh and does not count twice.
    pipes.open(2, PipeName::Wkssvc).unwrap();
    assert_eq!(pipes.len(), 2);
    assert_eq!(
        pipes.write(1, &[0; 101], &fixture),
        Err(PipeError::WriteTooLarge {
            handle: 1,
            len: 101,
            max: 100
        })
    );
    pipes.write(1, &hex(BIND_SRVSVC), &fixture).unwrap();
    drain(&mut pipes, 1);
    // The 72-byte enum1 stub, in 16-byte fragments, is more than 40 bytes of request.
    for f in fragments_of_enum1() {
        match pipes.write(1, &f, &fixture) {
            Ok(()) | Err(PipeError::Broken { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        drain(&mut pipes, 1),
        [pdu::fault(2, 0, 0, fault::REMOTE_NO_MEMORY)]
    );
    assert!(matches!(
        pipes.write(1, &hex(ENUM1), &fixture),
        Err(PipeError::Broken { .. })
    ));

    // Unread output: the 288-byte enum1 response is more than 200 bytes a pipe keeps, so it
    // is a fault; faults pile up to the limit, then writes are refused until reads.
    let mut pipes = Pipes::new(Limits {
        max_output: 200,
        ..Limits::default()
    });
    bound(&mut pipes, 1, PipeName::Srvsvc, &fixture);
    pipes.write(1, &hex(ENUM1), &fixture).unwrap();
    assert_eq!(
        drain(&mut pipes, 1),
        [pdu::fault(2, 0, 0, fault::OUT_ARGS_TOO_BIG)]
    );
    let mut unknown_op = hex(ENUM1);
    unknown_op[22] = 99;
    let mut refused = false;
    for _ in 0..10 {
        match pipes.write(1, &unknown_op, &fixture) {
            Ok(()) => {}
            Err(PipeError::OutputFull { handle: 1, pending }) => {
                assert!(pending >= 200);
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused);
    assert!(pipes.buffered(1).unwrap() < 300);
    drain(&mut pipes, 1);
    pipes.write(1, &unknown_op, &fixture).unwrap();

    assert_eq!(pipes.close(1), Ok(()));
    assert_eq!(pipes.close(1), Err(PipeError::UnknownHandle(1)));
    assert_eq!(pipes.read(1, 10), Err(PipeError::UnknownHandle(1)));
    assert_eq!(pipes.buffered(1), None);
}

#[test]
fn smbclient_listing_through_dispatch() {
    // What `smbclient -L` makes ksmbd send: OPEN, then transceives (bind, the enumeration),
    // then CLOSE without a pipe bit.
    let fixture = fixture();
    let mut pipes = Pipes::new(Limits::default());
    let ok = |r: RpcReply| {
        assert_eq!(r.status, ksmbd::status::OK);
        r.payload
    };
    assert!(ok(pipes.dispatch(5, 0x12, &[], &fixture)).is_empty());
    let ack = ok(pipes.dispatch(5, 0x0b, &hex(BIND_SRVSVC), &fixture));
    assert_eq!(to_hex(&ack), GOLDEN[0].exchanges[0].1[0]);
    let listing = ok(pipes.dispatch(5, 0x20b, &hex(ENUM1), &fixture));
    assert_eq!([to_hex(&listing).as_str()], golden_answer("enum1", 1));
    // Nothing more to read: an error status, which ksmbd turns into an I/O error.
    assert_eq!(
        pipes.dispatch(5, 0x43, &[], &fixture).status,
        ksmbd::status::EBAD_DATA
    );
    assert_eq!(
        pipes.dispatch(5, 0x80, &[], &fixture).status,
        ksmbd::status::OK
    );
    assert!(pipes.is_empty());
    assert_eq!(
        pipes.dispatch(5, 0x22, &hex(ENUM1), &fixture).status,
        ksmbd::status::EBAD_FID
    );
    assert_eq!(
        pipes.dispatch(6, 0x111, &[], &fixture).status,
        ksmbd::status::ENOTIMPLEMENTED
    );
    assert_eq!(
        pipes.dispatch(6, 0x4000_0012, &[], &fixture).status,
        ksmbd::status::EINVALID_PARAMETER
    );
    // The entry point the daemon calls gives the same.
    let mut pipes = Pipes::default();
    assert_eq!(
        handle_ksmbd(&mut pipes, 9, 0x12, &[], &fixture),
        (0, Vec::new())
    );
    let (status, ack) = handle_ksmbd(&mut pipes, 9, 0x0b, &hex(BIND_SRVSVC), &fixture);
    assert_eq!(
        (status, to_hex(&ack).as_str()),
        (0, golden_answer("bind_srvsvc", 0)[0])
    );
    let (status, body) = handle_ksmbd(&mut pipes, 9, 0x0b, &hex(ENUM1), &fixture);
    assert_eq!((status, body), (0, listing));
}

use crate::testing::Rng;

/// Whether `handle` refuses input after a protocol error (an empty write tells).
fn is_broken_handle(pipes: &mut Pipes, handle: u32, ctx: &Context) -> bool {
    matches!(pipes.write(handle, &[], ctx), Err(PipeError::Broken { .. }))
}

/// Mutates a valid PDU: flipped bytes, a new length, truncation, extension or splicing; half
/// of the time the fragment length is then made to fit, so the stub reaches the decoders.
fn mutate(rng: &mut Rng, pdu: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut p = pdu.to_vec();
    let fit_length = rng.below(2) == 0;
    for _ in 0..=rng.below(2) {
        match rng.below(7) {
            0 if p.len() > 24 => {
                let i = 24 + rng.below(p.len() - 24);
                p[i] = rng.next() as u8;
            }
            1 if p.len() >= 10 => {
                let len = (rng.next() as u16).to_le_bytes();
                p[8..10].copy_from_slice(&len);
            }
            2 => p.truncate(rng.below(p.len() + 1)),
            3 => p.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            4 if p.len() > 24 => {
                // A field in the stub: an NDR count or pointer.
                let i = 24 + rng.below(p.len() - 24);
                let v = [0u32, 1, 0xffff_ffff, 0x7fff_ffff, 0x20000, 501][rng.below(6)];
                for (k, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = p.get_mut(i + k) {
                        *x = *b;
                    }
                }
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(p.len() + 1);
                p.truncate(cut);
                p.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            _ if p.len() > 3 => p[3] = rng.next() as u8,
            _ => {}
        }
    }
    if fit_length && p.len() >= 10 {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX).to_le_bytes();
        p[8..10].copy_from_slice(&len);
    }
    p
}

/// What a client may ever read: whole, well-formed server PDUs.
fn check_output(frags: &[Vec<u8>]) {
    for f in frags {
        let h = Header::parse(f).expect("output shorter than a header");
        assert_eq!(usize::from(h.frag_len), f.len());
        assert!(h.is_little_endian_ascii_ieee() && h.is_version_5());
        assert_eq!(h.auth_len, 0);
        assert!(
            [
                ptype::RESPONSE,
                ptype::FAULT,
                ptype::BIND_ACK,
                ptype::BIND_NAK,
                ptype::ALTER_CONTEXT_RESP
            ]
            .contains(&h.ptype),
            "output PDU type {}",
            h.ptype
        );
        assert!(f.len() <= 1024 || h.ptype != ptype::RESPONSE);
    }
}

#[test]
fn fuzz() {
    let fixture = fixture_with(5);
    let ctx = fixture;
    let mut corpus: Vec<Vec<u8>> = GOLDEN
        .iter()
        .flat_map(|g| {
            g.exchanges
                .iter()
                .flat_map(|(w, _)| w.iter().map(|s| hex(s)))
        })
        .collect();
    corpus.push(hex(ENUM1));
    let bind = hex(BIND_SRVSVC);
    let requests: Vec<Vec<u8>> = corpus
        .iter()
        .filter(|p| p.len() > 24 && p[2] == ptype::REQUEST)
        .cloned()
        .collect();
    let mut decoded_errors = 0usize;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let limits = Limits::default();
    let mut pipes = Pipes::new(limits.clone());
    let pipe_names = [
        PipeName::Srvsvc,
        PipeName::Wkssvc,
        PipeName::Samr,
        PipeName::Lsarpc,
    ];
    for round in 0..50_000 {
        let handle = rng.below(8) as u32;
        let input = match rng.below(4) {
            0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            _ => {
                let base = corpus[rng.below(corpus.len())].clone();
                mutate(&mut rng, &base, &corpus)
            }
        };
        match rng.below(10) {
            0 => {
                let _ = pipes.open(handle, pipe_names[rng.below(4)]);
                // Most pipes get a proper BIND first, so requests reach the calls.
                if rng.below(3) > 0 {
                    let _ = pipes.write(handle, &bind, &ctx);
                }
            }
            1 => {
                let _ = pipes.close(handle);
            }
            2..=5 => {
                let _ = pipes.write(handle, &input, &ctx);
            }
            6 => {
                if let Ok(f) = pipes.transceive(handle, &input, 4096, &ctx) {
                    check_output(&[f]);
                }
            }
            7 => {
                // Straight into dispatch with any flags.
                let flags = match rng.below(3) {
                    0 => rng.next() as u32,
                    _ => [0x12u32, 0x14, 0x22, 0x43, 0x0b, 0x80, 0x222, 0x20b][rng.below(8)],
                };
                let reply = pipes.dispatch(handle, flags, &input, &ctx);
                if reply.status == ksmbd::status::OK && !reply.payload.is_empty() {
                    check_output(&[reply.payload]);
                }
            }
            _ => {}
        }
        if pipes.buffered(handle).is_some() {
            let out = drain(&mut pipes, handle);
            check_output(&out);
            if is_broken_handle(&mut pipes, handle, &ctx) {
                // Start again, so that most rounds reach the calls.
                let _ = pipes.open(handle, pipe_names[rng.below(2)]);
                let _ = pipes.write(handle, &bind, &ctx);
                drain(&mut pipes, handle);
            }
        }
        assert!(pipes.len() <= limits.max_pipes);
        for h in 0..8 {
            if let Some(b) = pipes.buffered(h) {
                assert!(
                    b <= 2 * limits.max_output
                        + 64
                        + limits.max_write
                        + pdu::MAX_FRAG_IN
                        + limits.max_request,
                    "round {round}: handle {h} holds {b} bytes"
                );
            }
        }
        // The decoders on their own, with random stubs and with mutated valid ones.
        let stub: Vec<u8> = (0..rng.below(120)).map(|_| rng.next() as u8).collect();
        let opnum = [0u16, 15, 16, 21, 36, rng.next() as u16][rng.below(6)];
        let _ = srvsvc::call(opnum, &stub, &ctx);
        let _ = wkssvc::call(opnum, &stub, &ctx);
        let request = &requests[rng.below(requests.len())];
        let mut stub = request[24..].to_vec();
        for _ in 0..=rng.below(3) {
            let i = rng.below(stub.len());
            let v = [
                0u32,
                1,
                2,
                0xffff_ffff,
                0x7fff_ffff,
                0x20000,
                501,
                rng.next() as u32,
            ];
            let v = v[rng.below(v.len())];
            if rng.below(2) == 0 {
                stub[i] = v as u8;
            } else {
                for (k, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = stub.get_mut(i + k) {
                        *x = *b;
                    }
                }
            }
        }
        stub.truncate(stub.len() - rng.below(3) * rng.below(stub.len() / 2 + 1));
        let opnum = u16::from_le_bytes([request[22], request[23]]);
        match srvsvc::call(opnum, &stub, &ctx).or_else(|_| wkssvc::call(opnum, &stub, &ctx)) {
            Ok(out) => assert!(out.len() >= 8 && out.len() % 4 == 0),
            Err(_) => decoded_errors += 1,
        }
        let _ = RpcCommand::from_flags(rng.next() as u32);
    }
    // The mutations reach both outcomes of the decoders.
    assert!(
        decoded_errors > 1000 && decoded_errors < 45_000,
        "{decoded_errors}"
    );
}
