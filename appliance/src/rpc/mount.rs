//! The MOUNT service: program 100005, versions 1 (RFC 1094 appendix A) and 3 (RFC 1813
//! appendix I), for clients that list exports before they mount.
//!
//! The appliance serves NFSv4 only, and NFSv4 needs no MOUNT protocol: this service exists
//! because Proxmox VE's storage check and GUI export scan run `showmount --exports`, which
//! asks for MOUNT version 1's EXPORT (nfs-utils' showmount calls `MOUNTPROC_EXPORT` with
//! `MOUNTVERS` = 1, over TCP, then UDP), and version 3 is what NFSv3 clients and
//! `rpcinfo`-style probes look for. Version 2 (EXPORTALL, PATHCONF) is not served; its callers
//! get PROG_MISMATCH 1–3.
//!
//! Procedures: NULL; EXPORT, the export list from the init's callback, each path with its
//! client specifications ("10.0.3.0/24", "*") as groups; DUMP, always the empty list (no
//! client mounts through MOUNT here); UMNT and UMNTALL, accepted and ignored; and MNT, which
//! always fails, because there is no NFSv3 file handle to give. MNT answers
//! `MNT3ERR_ACCES` (13) in version 3 and the same value, `EACCES`, in version 1, rather than
//! `MNT3ERR_NOTSUPP` (10004): the Linux client maps ACCES to EACCES and stops with "access
//! denied by server while mounting", a clear answer that ends version fallback, while it maps
//! NOTSUPP to the kernel-internal ENOTSUPP (524), which mount.nfs prints as "Unknown error
//! 524"; and version 1's status is an errno, which has no NOTSUPP. The refusal is logged
//! with what to do (mount with vers=4).
//!
//! Paths longer than `MNTPATHLEN` (1024) or groups longer than `MNTNAMLEN` (255) are left out
//! of EXPORT with a log line: clients' decoders reject the whole reply otherwise.

use std::sync::Arc;

use super::message::Call;
use super::registry::Netid;
use super::service::{CallContext, Failure, LogLimit, Program};
use super::xdr::{XdrReader, XdrWriter};
use super::ExportEntry;

pub const PROGRAM: u32 = 100_005;

/// `MNTPATHLEN` and `MNTNAMLEN`.
pub const MAX_PATH: usize = 1024;
pub const MAX_NAME: usize = 255;

/// `MNT3ERR_ACCES`, and `EACCES` for version 1.
pub const MNT_ACCES: u32 = 13;

/// Where the export list comes from.
pub type ExportSource = Arc<dyn Fn() -> Vec<ExportEntry> + Send + Sync>;

pub struct Mount {
    exports: ExportSource,
    log: Arc<LogLimit>,
}

impl Mount {
    pub fn new(exports: ExportSource, log: Arc<LogLimit>) -> Self {
        Self { exports, log }
    }

    fn export(&self, out: &mut XdrWriter) {
        let exports = (self.exports)();
        let fits = |e: &&ExportEntry| {
            let ok = e.path.len() <= MAX_PATH && e.groups.iter().all(|g| g.len() <= MAX_NAME);
            if !ok {
                self.log.log(log::Level::Warn, || {
                    format!(
                        "mountd: export {:.64}... left out of the export list: its path is over \
                         {MAX_PATH} bytes or a client specification is over {MAX_NAME}",
                        e.path
                    )
                });
            }
            ok
        };
        out.list(exports.iter().filter(fits), |w, e| {
            w.string(&e.path);
            w.list(&e.groups, |w, g| w.string(g));
        });
    }
}

impl Program for Mount {
    fn name(&self) -> &'static str {
        "mountd"
    }

    fn number(&self) -> u32 {
        PROGRAM
    }

    fn versions(&self, _: Netid) -> (u32, u32) {
        (1, 3)
    }

    fn serves(&self, vers: u32, _: Netid) -> bool {
        vers == 1 || vers == 3
    }

    fn call(&self, ctx: &CallContext, call: &Call<'_>, out: &mut XdrWriter) -> Result<(), Failure> {
        let mut r = XdrReader::new(call.args);
        match call.proc_ {
            0 => {}
            1 => {
                let path = r.string(MAX_PATH as u32)?;
                self.log.log(log::Level::Info, || {
                    format!(
                        "mountd: refused a MOUNT version {} request from {} for {path:?}: this \
                         server serves NFSv4 only; mount it with vers=4",
                        call.vers, ctx.peer
                    )
                });
                // Version 3's mountres3 and version 1's fhstatus both start with the status,
                // and a failure carries nothing else.
                out.u32(MNT_ACCES);
            }
            2 => out.bool(false),
            3 => {
                r.string(MAX_PATH as u32)?;
            }
            4 => {}
            5 => self.export(out),
            _ => return Err(Failure::ProcUnavail),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::message::client::{decode_reply, encode_call, Reply};
    use crate::rpc::message::{Accepted, AuthSys, Credential};
    use crate::rpc::service::Service;
    use crate::rpc::test_util::{be, words, xdr_string};

    fn service(exports: Vec<ExportEntry>) -> Service {
        let log = Arc::new(LogLimit);
        Service::new(
            Arc::new(Mount::new(Arc::new(move || exports.clone()), log.clone())),
            log,
        )
    }

    fn entry(path: &str, groups: &[&str]) -> ExportEntry {
        ExportEntry {
            path: path.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn call(service: &Service, vers: u32, proc_: u32, args: &[u8]) -> Reply {
        let cred = Credential::Sys(AuthSys {
            stamp: 1,
            machine: "pve".into(),
            uid: 0,
            gid: 0,
            gids: vec![],
        });
        let msg = encode_call(3, PROGRAM, vers, proc_, &cred, args);
        let ctx = CallContext {
            peer: "10.0.3.7:700".parse().unwrap(),
            local: "10.0.3.1:20048".parse().unwrap(),
            netid: Netid::Tcp,
        };
        decode_reply(&service.handle(&msg, &ctx).unwrap())
            .unwrap()
            .1
    }

    fn ok(results: Vec<u8>) -> Reply {
        Reply::Accepted(Accepted::Success, results)
    }

    #[test]
    fn export_golden() {
        let s = service(vec![
            entry("/mnt/tank/media", &["10.0.3.0/24", "*"]),
            entry("/mnt/tank/vms", &[]),
        ]);
        let mut want = be(1).to_vec();
        want.extend(xdr_string("/mnt/tank/media"));
        want.extend(be(1));
        want.extend(xdr_string("10.0.3.0/24"));
        want.extend(be(1));
        want.extend(xdr_string("*"));
        want.extend(be(0)); // end of groups
        want.extend(be(1));
        want.extend(xdr_string("/mnt/tank/vms"));
        want.extend(be(0)); // no groups
        want.extend(be(0)); // end of exports
        assert_eq!(call(&s, 1, 5, &[]), ok(want.clone()));
        assert_eq!(call(&s, 3, 5, &[]), ok(want));
        // No exports: the empty list.
        assert_eq!(call(&service(vec![]), 3, 5, &[]), ok(be(0).to_vec()));
    }

    #[test]
    fn oversized_exports_are_left_out() {
        let long = format!("/{}", "a".repeat(MAX_PATH));
        let s = service(vec![
            entry(&long, &[]),
            entry("/ok", &[&"b".repeat(MAX_NAME + 1)]),
            entry("/ok", &["*"]),
        ]);
        let mut want = be(1).to_vec();
        want.extend(xdr_string("/ok"));
        want.extend(words(&[1, 1]));
        want.extend(b"*\0\0\0");
        want.extend(words(&[0, 0]));
        assert_eq!(call(&s, 3, 5, &[]), ok(want));
    }

    #[test]
    fn mnt_is_refused_and_the_rest_are_no_ops() {
        let s = service(vec![entry("/mnt/tank/media", &["*"])]);
        let path = xdr_string("/mnt/tank/media");
        assert_eq!(call(&s, 3, 1, &path), ok(be(MNT_ACCES).to_vec()));
        assert_eq!(call(&s, 1, 1, &path), ok(be(MNT_ACCES).to_vec()));
        assert_eq!(call(&s, 3, 0, &[]), ok(vec![]));
        assert_eq!(call(&s, 3, 2, &[]), ok(be(0).to_vec()));
        assert_eq!(call(&s, 3, 3, &path), ok(vec![]));
        assert_eq!(call(&s, 3, 4, &[]), ok(vec![]));
        assert_eq!(
            call(&s, 3, 1, &[0, 0]),
            Reply::Accepted(Accepted::GarbageArgs, vec![])
        );
        assert_eq!(
            call(&s, 3, 6, &[]),
            Reply::Accepted(Accepted::ProcUnavail, vec![])
        );
        assert_eq!(
            call(&s, 2, 5, &[]),
            Reply::Accepted(Accepted::ProgMismatch { low: 1, high: 3 }, vec![])
        );
    }
}
