//! Fuzz tests: a seeded PRNG feeds random and mutated messages into every decoder, into the
//! request handler of both programs, and into the live services over TCP and UDP.
//!
//! Nothing may panic; every reply must be a well-formed RPC reply to the request's xid; the
//! init's registrations must survive whatever loopback callers send; and the services must
//! still answer afterwards.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::message::client::{decode_reply, encode_call, Reply};
use super::message::{decode_auth_sys, decode_call, Accepted, AuthSys, Credential};
use super::mount::Mount;
use super::record::{frame, read_record};
use super::registry::{parse_uaddr, Netid, Owner, Registry, MAX_ENTRIES};
use super::rpcbind::Rpcbind;
use super::service::{CallContext, LogLimit, Service};
use super::test_util::{
    rpcb, sample_exports, sample_registry, tcp_call, udp_call, words, xdr_string,
};
use super::xdr::XdrReader;
use super::{start_with, RpcConfig, Timeouts, MOUNT_PROGRAM, RPCBIND_PROGRAM};

use crate::testing::Rng;

/// A mutation of a random member of `corpus`.
fn mutant(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let seed = &corpus[rng.below(corpus.len())];
    mutate(rng, seed)
}

/// Words that sit on the decoders' boundaries.
const EDGES: [u32; 14] = [
    0,
    1,
    2,
    3,
    16,
    17,
    255,
    256,
    400,
    401,
    1024,
    1025,
    0x7fff_ffff,
    0xffff_ffff,
];

/// Valid calls of every procedure of both programs, with both credential flavors.
fn corpus() -> Vec<Vec<u8>> {
    let sys = Credential::Sys(AuthSys {
        stamp: 7,
        machine: "pve-node-1".into(),
        uid: 0,
        gid: 0,
        gids: vec![0, 1, 2],
    });
    let get = rpcb(100_003, 4, "tcp", "127.0.0.1.0.111", "root");
    let set = rpcb(100_021, 4, "udp", "0.0.0.0.3.232", "root");
    // A netbuf of 16 bytes: sockaddr_in for 127.0.0.1 port 2049, family in little-endian.
    let taddr = words(&[16, 16, 0x0200_0801, 0x7f00_0001, 0, 0]);
    let mut args: Vec<(u32, u32, u32, Vec<u8>)> = vec![
        (RPCBIND_PROGRAM, 2, 0, vec![]),
        (RPCBIND_PROGRAM, 2, 1, words(&[100_021, 1, 17, 4045])),
        (RPCBIND_PROGRAM, 2, 2, words(&[100_021, 1, 17, 0])),
        (RPCBIND_PROGRAM, 2, 3, words(&[MOUNT_PROGRAM, 3, 6, 0])),
        (RPCBIND_PROGRAM, 2, 4, vec![]),
        (RPCBIND_PROGRAM, 2, 5, words(&[MOUNT_PROGRAM, 3, 0, 0])),
        (MOUNT_PROGRAM, 1, 5, vec![]),
        (MOUNT_PROGRAM, 3, 5, vec![]),
        (MOUNT_PROGRAM, 3, 1, xdr_string("/mnt/tank/media")),
        (MOUNT_PROGRAM, 1, 1, xdr_string("/mnt/tank/media")),
        (MOUNT_PROGRAM, 3, 2, vec![]),
        (MOUNT_PROGRAM, 3, 3, xdr_string("/mnt/tank/media")),
        (MOUNT_PROGRAM, 3, 4, vec![]),
    ];
    for vers in [3, 4] {
        args.extend([
            (RPCBIND_PROGRAM, vers, 0, vec![]),
            (RPCBIND_PROGRAM, vers, 1, set.clone()),
            (RPCBIND_PROGRAM, vers, 2, set.clone()),
            (RPCBIND_PROGRAM, vers, 3, get.clone()),
            (RPCBIND_PROGRAM, vers, 4, vec![]),
            (RPCBIND_PROGRAM, vers, 6, vec![]),
            (RPCBIND_PROGRAM, vers, 7, xdr_string("127.0.0.1.8.1")),
            (RPCBIND_PROGRAM, vers, 8, taddr.clone()),
        ]);
    }
    args.extend([
        (RPCBIND_PROGRAM, 4, 9, get.clone()),
        (RPCBIND_PROGRAM, 4, 11, get.clone()),
        (RPCBIND_PROGRAM, 4, 12, vec![]),
    ]);
    let mut out = Vec::new();
    for (i, (prog, vers, proc_, a)) in args.into_iter().enumerate() {
        let cred = if i % 2 == 0 { &sys } else { &Credential::None };
        out.push(encode_call(i as u32, prog, vers, proc_, cred, &a));
    }
    out
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let words = m.len() / 4;
        match rng.below(6) {
            0 if !m.is_empty() => {
                let at = rng.below(m.len());
                m[at] = rng.next() as u8;
            }
            1 if words > 0 => {
                let at = rng.below(words) * 4;
                let v = if rng.below(2) == 0 {
                    EDGES[rng.below(EDGES.len())]
                } else {
                    rng.next() as u32
                };
                m[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            2 => m.truncate(rng.below(m.len() + 1)),
            3 => {
                let n = rng.below(64);
                m.extend(rng.bytes(n));
            }
            4 => {
                let at = rng.below(words + 1) * 4;
                let v = EDGES[rng.below(EDGES.len())];
                m.splice(at.min(m.len())..at.min(m.len()), v.to_be_bytes());
            }
            _ if words > 0 => {
                let at = rng.below(words) * 4;
                m.drain(at..at + 4);
            }
            _ => {}
        }
    }
    m
}

/// Checks a reply to `msg`: a well-formed reply with the request's xid. Returns its kind.
fn check_reply(msg: &[u8], reply: &[u8]) -> String {
    let (xid, reply) = decode_reply(reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"));
    assert_eq!(&xid.to_be_bytes()[..], &msg[..4]);
    match reply {
        Reply::Accepted(Accepted::ProgMismatch { .. }, _) => "PROG_MISMATCH".into(),
        Reply::Accepted(status, _) => format!("{status:?}"),
        Reply::Denied(denied) => format!("{denied:?}"),
        Reply::OtherAuth(stat) => panic!("AUTH_ERROR {stat} is never sent"),
    }
}

struct Rig {
    registry: Arc<Mutex<Registry>>,
    rpcbind: Service,
    mount: Service,
}

fn rig() -> Rig {
    let registry = Arc::new(Mutex::new(sample_registry()));
    let log = Arc::new(LogLimit);
    let exports = Arc::new(sample_exports);
    Rig {
        rpcbind: Service::new(
            Arc::new(Rpcbind::new(registry.clone(), log.clone())),
            log.clone(),
        ),
        mount: Service::new(Arc::new(Mount::new(exports, log.clone())), log),
        registry,
    }
}

fn contexts() -> Vec<CallContext> {
    let ctx = |peer: &str, local: &str, netid| CallContext {
        peer: peer.parse().unwrap(),
        local: local.parse().unwrap(),
        netid,
    };
    vec![
        ctx("10.0.3.7:1023", "10.0.3.1:111", Netid::Tcp),
        ctx("127.0.0.1:700", "127.0.0.1:111", Netid::Udp),
        ctx("[::1]:700", "[::1]:111", Netid::Tcp6),
        ctx("[fd00::7]:700", "[fd00::1]:111", Netid::Udp6),
    ]
}

#[test]
fn decoders_and_handlers_survive_mutated_and_random_messages() {
    let rig = rig();
    let corpus = corpus();
    let contexts = contexts();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut replies = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for round in 0..40_000 {
        let msg = if round % 8 == 0 {
            let n = rng.below(200);
            rng.bytes(n)
        } else {
            mutant(&mut rng, &corpus)
        };
        let _ = decode_call(&msg);
        let ctx = &contexts[round % contexts.len()];
        for service in [&rig.rpcbind, &rig.mount] {
            if let Some(reply) = service.handle(&msg, ctx) {
                kinds.insert(check_reply(&msg, &reply));
                replies += 1;
            }
        }
    }
    // Most mutations keep the header intact, so most messages were answered.
    assert!(replies > 30_000, "only {replies} replies");
    // And every kind of reply came up.
    let want = [
        "Auth(BadCred)",
        "Auth(BadVerf)",
        "Auth(RejectedCred)",
        "GarbageArgs",
        "PROG_MISMATCH",
        "ProcUnavail",
        "ProgUnavail",
        "RpcMismatch",
        "Success",
    ];
    assert_eq!(kinds.iter().map(String::as_str).collect::<Vec<_>>(), want);
    // Loopback SETs and UNSETs never remove the init's entries or overfill the registry.
    let registry = rig.registry.lock().unwrap();
    let system = registry
        .entries()
        .iter()
        .filter(|m| m.owner == Owner::System)
        .count();
    assert_eq!(system, sample_registry().entries().len());
    assert!(registry.entries().len() <= MAX_ENTRIES);
}

#[test]
fn low_level_decoders_survive_garbage() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let corpus = corpus();
    for _ in 0..20_000 {
        // AUTH_SYS bodies: random, and mutations of a good one.
        let good = {
            let mut b = words(&[1, 3]);
            b.extend(b"pve\0");
            b.extend(words(&[0, 0, 2, 0, 1]));
            b
        };
        let _ = decode_auth_sys(&mutate(&mut rng, &good));
        let n = rng.below(80);
        let _ = decode_auth_sys(&rng.bytes(n));
        // Record streams: framed calls, mutated, read until they end.
        let framed = frame(&corpus[rng.below(corpus.len())]).unwrap();
        let mut twice = framed.clone();
        twice.extend(&framed);
        let stream = mutate(&mut rng, &twice);
        let mut r = &stream[..];
        for _ in 0..4 {
            match read_record(&mut r, 512) {
                Ok(Some(record)) => assert!(record.len() <= 512),
                Ok(None) | Err(_) => break,
            }
        }
        // Universal addresses from an alphabet that makes near misses likely.
        let alphabet = b"0123456789.:af%";
        let text: String = (0..rng.below(40))
            .map(|_| alphabet[rng.below(alphabet.len())] as char)
            .collect();
        for netid in [Netid::Tcp, Netid::Udp6] {
            if let Some(addr) = parse_uaddr(&text, netid) {
                assert_eq!(addr.is_ipv6(), netid.is_v6());
            }
        }
        // Random sequences of reads.
        let n = rng.below(64);
        let bytes = rng.bytes(n);
        let mut r = XdrReader::new(&bytes);
        for _ in 0..8 {
            let max = EDGES[rng.below(EDGES.len())];
            let _ = match rng.below(5) {
                0 => r.u32().map(|_| ()),
                1 => r.u64().map(|_| ()),
                2 => r.bool().map(|_| ()),
                3 => r.opaque(max).map(|_| ()),
                _ => r.string(max).map(|_| ()),
            };
            assert!(r.position() <= bytes.len());
        }
    }
}

#[test]
fn live_services_survive_garbage() {
    let config = RpcConfig {
        ipv4: Some(Ipv4Addr::LOCALHOST),
        ipv6: Some(Ipv6Addr::LOCALHOST),
        rpcbind_port: 0,
        mount_port: 0,
        // More than the garbage connections below, which may all be open at once: the bound
        // has its own test in server.rs.
        max_connections: 64,
        timeouts: Timeouts {
            idle: Duration::from_millis(200),
            record: Duration::from_millis(200),
            write: Duration::from_millis(200),
        },
    };
    let services = start_with(&config, Arc::new(Vec::new)).unwrap();
    let rpcbind: SocketAddr = (Ipv4Addr::LOCALHOST, services.rpcbind_port()).into();
    let mount: SocketAddr = (Ipv4Addr::LOCALHOST, services.mount_port()).into();
    let corpus = corpus();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for round in 0..2_000 {
        let msg = mutant(&mut rng, &corpus);
        let target = if round % 2 == 0 { rpcbind } else { mount };
        udp.send_to(&msg, target).unwrap();
    }
    for round in 0..60 {
        let target = if round % 2 == 0 { rpcbind } else { mount };
        let mut stream = TcpStream::connect(target).unwrap();
        let mut bytes = Vec::new();
        for _ in 0..3 {
            bytes.extend(frame(&mutant(&mut rng, &corpus)).unwrap());
        }
        let bytes = if round % 3 == 0 {
            mutate(&mut rng, &bytes)
        } else {
            bytes
        };
        // The server may close the connection part-way; that is its right.
        let _ = stream.write_all(&bytes);
    }
    // Still serving, on both transports.
    let ok = Reply::Accepted(Accepted::Success, vec![]);
    assert_eq!(tcp_call(rpcbind, RPCBIND_PROGRAM, 4, 0, &[]), ok);
    assert_eq!(udp_call(rpcbind, RPCBIND_PROGRAM, 2, 0, &[]), ok);
    assert_eq!(tcp_call(mount, MOUNT_PROGRAM, 3, 0, &[]), ok);
    assert_eq!(udp_call(mount, MOUNT_PROGRAM, 3, 0, &[]), ok);
    services.stop();
}
