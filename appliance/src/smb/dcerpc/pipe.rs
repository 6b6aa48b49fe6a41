//! The server side of one DCE/RPC association per pipe handle: what a client's writes mean
//! and what its reads get back.
//!
//! What lives here: [`Pipes`] (the handles, bounded in number and in memory each), the
//! association state machine (bind, alter context, requests and their reassembly, cancels and
//! orphans), splitting responses into fragments, and the output queue that reads and
//! transceives drain. What does not: byte layouts ([`super::pdu`], [`super::ndr`]), the calls
//! ([`super::srvsvc`], [`super::wkssvc`]) and the KSMBD_RPC_* encoding ([`super::ksmbd`]).
//!
//! The rules follow C706 and MS-RPCE, and where those leave a choice, what Windows and Samba
//! do: the first PDU must be a BIND (anything else is refused with a BIND_NAK); one new
//! presentation context is accepted per BIND or ALTER_CONTEXT (Windows proposes NDR, NDR64 and
//! the bind-time feature negotiation together: NDR is accepted, NDR64 gets
//! provider_rejection / proposed_transfer_syntaxes_not_supported, the feature context gets
//! negotiate_ack with only "keep connection on orphan" granted); both fragment sizes in the
//! BIND_ACK are min(client's two sizes) floored at 2048, capped at 4096 (the most ksmbd
//! forwards in one pipe write or transceive, `KSMBD_IPC_MAX_PAYLOAD`) and rounded down to a
//! multiple of 8; a protocol violation is answered with a FAULT (or BIND_NAK) and the pipe
//! then takes no more input, the way Samba drops the connection.
//!
//! Reads: ksmbd passes neither the client's read length nor its transceive output size to the
//! daemon (smb2_read_pipe returns the whole payload, fsctl_pipe_transceive truncates it to
//! min(4096, MaxOutputResponse) and throws the rest away), and Windows transceives with 1024
//! bytes of output. So responses are cut into fragments of at most
//! [`Limits::response_fragment`] bytes (1024), below the negotiated maximum as C706 allows,
//! and each read or transceive returns one whole fragment: no client ever gets less than the
//! fragment it asked for, and nothing is lost in the kernel.

use std::collections::{HashMap, VecDeque};

use super::ndr::NdrError;
use super::pdu::{
    self, fault, feature, nak, pfc, ptype, result, Bind, BindAck, ContextElem, ContextResult,
    Header, Request, SyntaxId, CALL_HEADER_LEN, HEADER_LEN, MAX_FRAG_IN,
};
use super::{srvsvc, wkssvc, Context, PipeName};

/// Why a call produced no response stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The interface has no such opnum, or this server does not implement it.
    UnknownOpnum(u16),
    /// The request's stub does not decode.
    Ndr(NdrError),
}

impl From<NdrError> for CallError {
    fn from(e: NdrError) -> Self {
        CallError::Ndr(e)
    }
}

/// An interface this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Srvsvc,
    Wkssvc,
}

impl Interface {
    pub fn syntax(self) -> SyntaxId {
        match self {
            Interface::Srvsvc => srvsvc::SYNTAX,
            Interface::Wkssvc => wkssvc::SYNTAX,
        }
    }

    /// The interface a pipe serves; samr and lsarpc serve none here.
    pub fn served_on(pipe: PipeName) -> Option<Interface> {
        match pipe {
            PipeName::Srvsvc => Some(Interface::Srvsvc),
            PipeName::Wkssvc => Some(Interface::Wkssvc),
            PipeName::Samr | PipeName::Lsarpc => None,
        }
    }

    fn call(self, opnum: u16, stub: &[u8], ctx: &Context) -> Result<Vec<u8>, CallError> {
        match self {
            Interface::Srvsvc => srvsvc::call(opnum, stub, ctx),
            Interface::Wkssvc => wkssvc::call(opnum, stub, ctx),
        }
    }
}

/// How much the daemon keeps for RPC pipes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Pipe handles open at once, over all sessions (ksmbd's handles are global ids).
    pub max_pipes: usize,
    /// Bytes in one write or transceive (ksmbd never forwards more than 4096).
    pub max_write: usize,
    /// Bytes of one request's stub after reassembly (share listing requests are under 200).
    pub max_request: usize,
    /// Bytes of one response, and of unread responses before a pipe refuses further writes.
    pub max_output: usize,
    /// The largest response fragment sent, header included (see the module doc for why it
    /// is 1024); clamped to 64..=4096.
    pub response_fragment: usize,
    /// Presentation contexts kept per association.
    pub max_contexts: usize,
}

impl Default for Limits {
    /// At most 64 pipes of about 100 KiB each: 6.5 MiB in the worst case.
    fn default() -> Self {
        Limits {
            max_pipes: 64,
            max_write: 16 * 1024,
            max_request: 16 * 1024,
            max_output: 64 * 1024,
            response_fragment: 1024,
            max_contexts: 8,
        }
    }
}

/// Why a pipe operation failed; each maps to a KSMBD_RPC_* status in
/// [`PipeError::ksmbd_status`](super::ksmbd).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipeError {
    #[error("no pipe is open with handle {0}: ksmbd did not open it through the daemon, or it was closed; the client must open the pipe again")]
    UnknownHandle(u32),
    #[error("{open} pipes are open, the most the daemon keeps; pipe handle {handle} was refused until clients close some")]
    TooManyPipes { handle: u32, open: usize },
    #[error("a write of {len} bytes to pipe handle {handle} is more than the {max} bytes the daemon takes at once")]
    WriteTooLarge { handle: u32, len: usize, max: usize },
    #[error("pipe handle {handle} holds {pending} bytes of responses nobody read; the client must read them before it writes more")]
    OutputFull { handle: u32, pending: usize },
    #[error("pipe handle {0} has no response to read: the client read before it wrote a complete request")]
    NothingToRead(u32),
    #[error("pipe handle {handle} takes no more input after a protocol error ({reason}); the client must close and reopen it")]
    Broken { handle: u32, reason: String },
}

/// The largest fragment size this server negotiates: one fragment must fit in the 4096 bytes
/// ksmbd forwards per pipe write (`KSMBD_IPC_MAX_PAYLOAD`).
const MAX_NEGOTIATED_FRAG: u16 = 4096;
/// The smallest fragment size this server negotiates, whatever the client proposes (Windows
/// answers the same, Samba found).
const MIN_NEGOTIATED_FRAG: u16 = 2048;
/// The first association group id handed out.
const FIRST_ASSOC_GROUP: u32 = 0x0001_0000;

/// All open pipes, keyed by ksmbd's pipe handle (the SMB2 VolatileFileId of the open).
pub struct Pipes {
    pipes: HashMap<u32, Pipe>,
    limits: Limits,
    next_assoc_group: u32,
}

impl Default for Pipes {
    /// No pipes open, the default [`Limits`].
    fn default() -> Self {
        Pipes::new(Limits::default())
    }
}

impl Pipes {
    pub fn new(limits: Limits) -> Self {
        Pipes {
            pipes: HashMap::new(),
            limits,
            next_assoc_group: FIRST_ASSOC_GROUP,
        }
    }

    /// The number of open pipes.
    pub fn len(&self) -> usize {
        self.pipes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// The bytes `handle` holds (an incomplete PDU, a request being reassembled, unread
    /// responses), or `None` when it is not open.
    pub fn buffered(&self, handle: u32) -> Option<usize> {
        self.pipes.get(&handle).map(|p| {
            let partial = match &p.state {
                State::Bound(a) => a.partial.as_ref().map_or(0, |c| c.stub.len()),
                _ => 0,
            };
            p.input.len() + partial + p.output_len
        })
    }

    /// Opens `pipe` under `handle`. A handle that is already open starts afresh: ksmbd only
    /// reuses a handle after freeing it, so the daemon missed the close.
    pub fn open(&mut self, handle: u32, pipe: PipeName) -> Result<(), PipeError> {
        if self.pipes.contains_key(&handle) {
            log::info!("ksmbd reopened pipe handle {handle} as {pipe}; dropping its old state");
        } else if self.pipes.len() >= self.limits.max_pipes {
            return Err(PipeError::TooManyPipes {
                handle,
                open: self.pipes.len(),
            });
        }
        self.pipes.insert(handle, Pipe::new(handle, pipe));
        Ok(())
    }

    /// Forgets `handle` and everything pending on it.
    pub fn close(&mut self, handle: u32) -> Result<(), PipeError> {
        self.pipes
            .remove(&handle)
            .map(|_| ())
            .ok_or(PipeError::UnknownHandle(handle))
    }

    /// Takes the bytes a client wrote: PDUs are processed as soon as they are complete (one
    /// write may hold several, or part of one), and their answers queue for reading.
    pub fn write(&mut self, handle: u32, bytes: &[u8], ctx: &Context) -> Result<(), PipeError> {
        let pipe = self
            .pipes
            .get_mut(&handle)
            .ok_or(PipeError::UnknownHandle(handle))?;
        pipe.write(bytes, ctx, &self.limits, &mut self.next_assoc_group)
    }

    /// Returns the next response fragment, or its first `max` bytes (the rest stays for the
    /// next read).
    pub fn read(&mut self, handle: u32, max: usize) -> Result<Vec<u8>, PipeError> {
        self.pipes
            .get_mut(&handle)
            .ok_or(PipeError::UnknownHandle(handle))?
            .read(max)
    }

    /// A write followed by a read, for FSCTL_PIPE_TRANSCEIVE.
    pub fn transceive(
        &mut self,
        handle: u32,
        bytes: &[u8],
        max: usize,
        ctx: &Context,
    ) -> Result<Vec<u8>, PipeError> {
        self.write(handle, bytes, ctx)?;
        self.read(handle, max)
    }
}

/// A request whose later fragments are still to come.
struct Partial {
    call_id: u32,
    context_id: u16,
    opnum: u16,
    interface: Interface,
    stub: Vec<u8>,
}

/// An established association.
struct Association {
    /// The fragment size negotiated for both directions.
    frag: u16,
    assoc_group: u32,
    /// Accepted presentation contexts.
    contexts: Vec<(u16, Interface)>,
    partial: Option<Partial>,
}

enum State {
    /// Open, waiting for the BIND.
    Unbound,
    Bound(Association),
    /// A protocol error ended the association; the reason is logged and repeated to writers.
    Broken(String),
}

struct Pipe {
    handle: u32,
    name: PipeName,
    state: State,
    /// Bytes of a PDU not complete yet (less than one fragment).
    input: Vec<u8>,
    /// Fragments waiting to be read, and their total size.
    output: VecDeque<Vec<u8>>,
    output_len: usize,
}

impl Pipe {
    fn new(handle: u32, name: PipeName) -> Self {
        Pipe {
            handle,
            name,
            state: State::Unbound,
            input: Vec::new(),
            output: VecDeque::new(),
            output_len: 0,
        }
    }

    fn push(&mut self, fragment: Vec<u8>) {
        self.output_len += fragment.len();
        self.output.push_back(fragment);
    }

    /// Queues the answer to a protocol violation and ends the association.
    fn fail(&mut self, answer: Vec<u8>, reason: String) {
        crate::peer_log!(
            log::Level::Warn,
            "smb: RPC pipe protocol violations",
            "RPC pipe {} (handle {}): {reason}; the pipe takes no more input",
            self.name,
            self.handle
        );
        self.push(answer);
        self.state = State::Broken(reason);
        self.input.clear();
    }

    fn write(
        &mut self,
        bytes: &[u8],
        ctx: &Context,
        limits: &Limits,
        next_group: &mut u32,
    ) -> Result<(), PipeError> {
        if let State::Broken(reason) = &self.state {
            return Err(PipeError::Broken {
                handle: self.handle,
                reason: reason.clone(),
            });
        }
        if bytes.len() > limits.max_write {
            return Err(PipeError::WriteTooLarge {
                handle: self.handle,
                len: bytes.len(),
                max: limits.max_write,
            });
        }
        if self.output_len >= limits.max_output {
            return Err(PipeError::OutputFull {
                handle: self.handle,
                pending: self.output_len,
            });
        }
        self.input.extend_from_slice(bytes);
        while let Some(header) = Header::parse(&self.input) {
            let len = usize::from(header.frag_len);
            if !(HEADER_LEN..=MAX_FRAG_IN).contains(&len) {
                // Without a believable length the next PDU cannot be found.
                let answer = if matches!(self.state, State::Unbound) {
                    pdu::bind_nak(header.call_id, nak::NOT_SPECIFIED)
                } else {
                    pdu::fault(header.call_id, 0, 0, fault::PROTO_ERROR)
                };
                self.fail(
                    answer,
                    format!("a PDU says it is {len} bytes long ({HEADER_LEN} to {MAX_FRAG_IN} are valid)"),
                );
                break;
            }
            if self.input.len() < len {
                break;
            }
            if self.output_len >= limits.max_output {
                // One write may hold many PDUs; answers beyond what a pipe keeps are not
                // queued (Samba refuses a call while another is pending, too).
                let reason = format!(
                    "the client wrote more requests than the {} bytes of answers a pipe keeps before it read them",
                    limits.max_output
                );
                self.fail(pdu::fault(header.call_id, 0, 0, fault::PROTO_ERROR), reason);
                break;
            }
            let bytes: Vec<u8> = self.input.drain(..len).collect();
            self.pdu(&header, &bytes, ctx, limits, next_group);
            if matches!(self.state, State::Broken(_)) {
                break;
            }
        }
        Ok(())
    }

    fn read(&mut self, max: usize) -> Result<Vec<u8>, PipeError> {
        let Some(mut fragment) = self.output.pop_front() else {
            return Err(match &self.state {
                State::Broken(reason) => PipeError::Broken {
                    handle: self.handle,
                    reason: reason.clone(),
                },
                _ => PipeError::NothingToRead(self.handle),
            });
        };
        if fragment.len() > max {
            let rest = fragment.split_off(max);
            self.output.push_front(rest);
        }
        self.output_len = self.output_len.saturating_sub(fragment.len());
        Ok(fragment)
    }

    /// Handles one complete PDU.
    fn pdu(
        &mut self,
        h: &Header,
        bytes: &[u8],
        ctx: &Context,
        limits: &Limits,
        next_group: &mut u32,
    ) {
        let bound = matches!(self.state, State::Bound(_));
        if !bound {
            // Like Samba, whatever comes first is taken as the BIND it must be.
            if h.ptype != ptype::BIND || !h.is_version_5() {
                let reason = format!(
                    "the first PDU is type {} version {}.{}, not a version 5 BIND",
                    h.ptype, h.rpc_vers, h.rpc_vers_minor
                );
                self.fail(
                    pdu::bind_nak(h.call_id, nak::PROTOCOL_VERSION_NOT_SUPPORTED),
                    reason,
                );
                return;
            }
            self.bind(h, bytes, limits, next_group);
            return;
        }
        if !h.is_version_5() {
            let reason = format!("a PDU has version {}.{}", h.rpc_vers, h.rpc_vers_minor);
            self.fail(pdu::fault(h.call_id, 0, 0, fault::PROTO_ERROR), reason);
            return;
        }
        match h.ptype {
            ptype::BIND => self.fail(
                pdu::bind_nak(h.call_id, nak::NOT_SPECIFIED),
                "a second BIND on a bound association".into(),
            ),
            ptype::ALTER_CONTEXT => self.alter(h, bytes, limits),
            ptype::REQUEST => self.request(h, bytes, ctx, limits),
            // Calls complete as soon as they arrive, so there is nothing to cancel; Windows
            // ignores both too.
            ptype::CO_CANCEL | ptype::ORPHANED => {
                log::debug!(
                    "RPC pipe {} (handle {}): ignoring cancel/orphan for call {}",
                    self.name,
                    self.handle,
                    h.call_id
                );
            }
            other => {
                let reason = format!("a client sent a PDU of type {other}, which only servers send or which needs authentication");
                self.fail(pdu::fault(h.call_id, 0, 0, fault::PROTO_ERROR), reason);
            }
        }
    }

    fn bind(&mut self, h: &Header, bytes: &[u8], limits: &Limits, next_group: &mut u32) {
        if h.auth_len != 0 {
            self.fail(
                pdu::bind_nak(h.call_id, nak::AUTHENTICATION_TYPE_NOT_RECOGNIZED),
                "the BIND asks for authentication, which this server does not offer".into(),
            );
            return;
        }
        if !h.is_little_endian_ascii_ieee() {
            let reason = format!(
                "the BIND uses data representation {:02x?}; only little-endian ASCII IEEE is served",
                h.drep
            );
            self.fail(pdu::bind_nak(h.call_id, nak::NOT_SPECIFIED), reason);
            return;
        }
        let bind = match Bind::parse(bytes) {
            Ok(bind) => bind,
            Err(e) => {
                self.fail(
                    pdu::bind_nak(h.call_id, nak::NOT_SPECIFIED),
                    format!("malformed BIND: {e}"),
                );
                return;
            }
        };
        let frag = bind
            .max_xmit_frag
            .min(bind.max_recv_frag)
            .clamp(MIN_NEGOTIATED_FRAG, MAX_NEGOTIATED_FRAG)
            & !7;
        // A client joining an existing group gets its id back: nothing is shared between the
        // associations of a group here (no context handles), so any id is as good as known.
        let assoc_group = if bind.assoc_group_id != 0 {
            bind.assoc_group_id
        } else {
            let id = *next_group;
            *next_group = next_group.wrapping_add(1).max(FIRST_ASSOC_GROUP);
            id
        };
        let mut assoc = Association {
            frag,
            assoc_group,
            contexts: Vec::new(),
            partial: None,
        };
        let results = match negotiate(&mut assoc, &bind.contexts, self.name, true, limits) {
            Ok(results) => results,
            Err(reason) => {
                self.fail(pdu::bind_nak(h.call_id, nak::NOT_SPECIFIED), reason);
                return;
            }
        };
        let ack = pdu::bind_ack(
            ptype::BIND_ACK,
            &BindAck {
                call_id: h.call_id,
                max_xmit_frag: frag,
                max_recv_frag: frag,
                assoc_group_id: assoc_group,
                secondary_address: self.name.secondary_address(),
                results: &results,
            },
        );
        log::debug!(
            "RPC pipe {} (handle {}): bound, {} of {} contexts accepted, fragments of {frag} bytes",
            self.name,
            self.handle,
            assoc.contexts.len(),
            bind.contexts.len()
        );
        self.push(ack);
        self.state = State::Bound(assoc);
    }

    fn alter(&mut self, h: &Header, bytes: &[u8], limits: &Limits) {
        if h.auth_len != 0 {
            self.fail(
                pdu::fault(h.call_id, 0, 0, fault::ACCESS_DENIED),
                "an ALTER_CONTEXT carries authentication on an unauthenticated association".into(),
            );
            return;
        }
        if !h.is_little_endian_ascii_ieee() {
            self.fail(
                pdu::fault(h.call_id, 0, 0, fault::PROTO_ERROR),
                format!("an ALTER_CONTEXT uses data representation {:02x?}", h.drep),
            );
            return;
        }
        let State::Bound(assoc) = &mut self.state else {
            return;
        };
        let outcome = Bind::parse(bytes)
            .map_err(|e| format!("malformed ALTER_CONTEXT: {e}"))
            .and_then(|alter| negotiate(assoc, &alter.contexts, self.name, false, limits));
        match outcome {
            Ok(results) => {
                let resp = pdu::bind_ack(
                    ptype::ALTER_CONTEXT_RESP,
                    &BindAck {
                        call_id: h.call_id,
                        max_xmit_frag: assoc.frag,
                        max_recv_frag: assoc.frag,
                        assoc_group_id: assoc.assoc_group,
                        secondary_address: "",
                        results: &results,
                    },
                );
                self.push(resp);
            }
            Err(reason) => self.fail(pdu::fault(h.call_id, 0, 0, fault::PROTO_ERROR), reason),
        }
    }

    fn request(&mut self, h: &Header, bytes: &[u8], ctx: &Context, limits: &Limits) {
        let State::Bound(assoc) = &mut self.state else {
            return;
        };
        match request_step(assoc, h, bytes, limits) {
            Step::Wait => {}
            Step::Answer(answer) => self.push(answer),
            Step::Fail(answer, reason) => self.fail(answer, reason),
            Step::Execute(call, frag) => self.execute(&call, frag, ctx, limits),
        }
    }

    /// Runs a reassembled call and queues its response or fault.
    fn execute(&mut self, call: &Partial, frag: usize, ctx: &Context, limits: &Limits) {
        match call.interface.call(call.opnum, &call.stub, ctx) {
            Ok(stub) => self.respond(call, &stub, frag, limits),
            Err(CallError::UnknownOpnum(opnum)) => {
                log::debug!(
                    "RPC pipe {} (handle {}): opnum {opnum} is not served",
                    self.name,
                    self.handle
                );
                let answer = pdu::fault(
                    call.call_id,
                    pfc::DID_NOT_EXECUTE,
                    call.context_id,
                    fault::OP_RNG_ERROR,
                );
                self.push(answer);
            }
            Err(CallError::Ndr(e)) => {
                log::info!(
                    "RPC pipe {} (handle {}): the stub of opnum {} does not decode: {e}",
                    self.name,
                    self.handle,
                    call.opnum
                );
                self.push(pdu::fault(call.call_id, 0, call.context_id, fault::NDR));
            }
        }
    }

    /// Queues a response stub as RESPONSE fragments of at most `frag` bytes; every fragment
    /// but the last carries a multiple of 8 stub bytes.
    fn respond(&mut self, call: &Partial, stub: &[u8], frag: usize, limits: &Limits) {
        let per_fragment = (frag - CALL_HEADER_LEN) / 8 * 8;
        let fragments = stub.len().div_ceil(per_fragment).max(1);
        if stub.len() + fragments * CALL_HEADER_LEN > limits.max_output {
            log::warn!(
                "RPC pipe {} (handle {}): the response to opnum {} is {} bytes, more than the {} a pipe keeps",
                self.name,
                self.handle,
                call.opnum,
                stub.len(),
                limits.max_output
            );
            let answer = pdu::fault(call.call_id, 0, call.context_id, fault::OUT_ARGS_TOO_BIG);
            self.push(answer);
            return;
        }
        let mut at = 0;
        loop {
            let n = per_fragment.min(stub.len() - at);
            let mut flags = 0;
            if at == 0 {
                flags |= pfc::FIRST_FRAG;
            }
            if at + n == stub.len() {
                flags |= pfc::LAST_FRAG;
            }
            let alloc_hint = u32::try_from(stub.len() - at).unwrap_or(u32::MAX);
            let fragment = pdu::response(
                call.call_id,
                flags,
                call.context_id,
                alloc_hint,
                &stub[at..at + n],
            );
            self.push(fragment);
            at += n;
            if flags & pfc::LAST_FRAG != 0 {
                break;
            }
        }
    }
}

/// What one REQUEST fragment leads to.
enum Step {
    /// More fragments of the call are to come.
    Wait,
    /// A fault that leaves the association usable.
    Answer(Vec<u8>),
    /// A fault that ends the association, and why.
    Fail(Vec<u8>, String),
    /// The call is complete: run it, answering in fragments of this many bytes.
    Execute(Partial, usize),
}

/// Takes one REQUEST fragment into the association: checks it, reassembles it with the
/// fragments before it, and says what to do next.
fn request_step(assoc: &mut Association, h: &Header, bytes: &[u8], limits: &Limits) -> Step {
    let req = match Request::parse(h, bytes) {
        Ok(req) => req,
        Err(e) => {
            let answer = pdu::fault(h.call_id, 0, 0, fault::PROTO_ERROR);
            return Step::Fail(answer, format!("malformed REQUEST: {e}"));
        }
    };
    if h.auth_len != 0 {
        let answer = pdu::fault(h.call_id, 0, req.context_id, fault::ACCESS_DENIED);
        let reason = "a REQUEST carries authentication on an unauthenticated association";
        return Step::Fail(answer, reason.into());
    }
    let mut call = if h.flags & pfc::FIRST_FRAG != 0 {
        if let Some(p) = &assoc.partial {
            // Without concurrent multiplexing a new call cannot start inside another; Samba
            // faults the call in progress.
            let answer = pdu::fault(p.call_id, 0, p.context_id, fault::PROTO_ERROR);
            let reason = format!(
                "call {} started while call {} was still arriving",
                h.call_id, p.call_id
            );
            return Step::Fail(answer, reason);
        }
        if !h.is_little_endian_ascii_ieee() {
            let flags = pfc::DID_NOT_EXECUTE;
            return Step::Answer(pdu::fault(h.call_id, flags, req.context_id, fault::NDR));
        }
        let Some(&(_, interface)) = assoc.contexts.iter().find(|c| c.0 == req.context_id) else {
            let flags = pfc::DID_NOT_EXECUTE;
            return Step::Answer(pdu::fault(h.call_id, flags, req.context_id, fault::UNK_IF));
        };
        Partial {
            call_id: h.call_id,
            context_id: req.context_id,
            opnum: req.opnum,
            interface,
            stub: Vec::new(),
        }
    } else {
        match assoc.partial.take() {
            Some(p) if p.call_id == h.call_id => {
                if p.context_id != req.context_id
                    || p.opnum != req.opnum
                    || !h.is_little_endian_ascii_ieee()
                {
                    let answer = pdu::fault(p.call_id, 0, p.context_id, fault::PROTO_ERROR);
                    let reason = format!(
                        "a later fragment of call {} changes its context, opnum or data representation",
                        p.call_id
                    );
                    return Step::Fail(answer, reason);
                }
                p
            }
            other => {
                let answer = match &other {
                    Some(p) => pdu::fault(p.call_id, 0, p.context_id, fault::PROTO_ERROR),
                    None => pdu::fault(h.call_id, 0, req.context_id, fault::PROTO_ERROR),
                };
                let reason = format!(
                    "a fragment of call {} arrived without its first fragment",
                    h.call_id
                );
                return Step::Fail(answer, reason);
            }
        }
    };
    if call.stub.len() + req.stub.len() > limits.max_request {
        let answer = pdu::fault(call.call_id, 0, call.context_id, fault::REMOTE_NO_MEMORY);
        let reason = format!(
            "call {} is more than the {} bytes a request may have",
            call.call_id, limits.max_request
        );
        return Step::Fail(answer, reason);
    }
    call.stub.extend_from_slice(req.stub);
    if h.flags & pfc::LAST_FRAG == 0 {
        assoc.partial = Some(call);
        return Step::Wait;
    }
    let frag = usize::from(assoc.frag).min(limits.response_fragment.clamp(64, 4096));
    Step::Execute(call, frag)
}

/// Answers each proposed presentation context, adding the accepted one to `assoc`.
/// An `Err` is a protocol violation that ends the association.
fn negotiate(
    assoc: &mut Association,
    contexts: &[ContextElem],
    pipe: PipeName,
    is_bind: bool,
    limits: &Limits,
) -> Result<Vec<ContextResult>, String> {
    let mut results = Vec::with_capacity(contexts.len());
    let mut features_seen = false;
    // Once one context is accepted, the others are only validated.
    let mut accepted = false;
    for c in contexts {
        let features = c
            .transfer_syntaxes
            .first()
            .and_then(SyntaxId::bind_time_features);
        if let (true, Some(bits)) = (is_bind, features) {
            if features_seen {
                return Err("the BIND negotiates bind-time features twice".into());
            }
            features_seen = true;
            results.push(ContextResult {
                result: result::NEGOTIATE_ACK,
                reason: bits & feature::KEEP_CONNECTION_ON_ORPHAN,
                transfer_syntax: SyntaxId::NULL,
            });
            continue;
        }
        let mut answer = ContextResult {
            result: result::PROVIDER_REJECTION,
            reason: result::ABSTRACT_SYNTAX_NOT_SUPPORTED,
            transfer_syntax: SyntaxId::NULL,
        };
        let interface = Interface::served_on(pipe).filter(|i| i.syntax() == c.abstract_syntax);
        if let Some(interface) = interface {
            answer.reason = result::PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED;
            let ndr = c.transfer_syntaxes.contains(&pdu::NDR);
            if !accepted && ndr {
                let known = assoc.contexts.iter().find(|(id, _)| *id == c.id);
                match known {
                    Some((_, existing)) if *existing != interface => {
                        return Err(format!(
                            "presentation context {} is rebound to another interface",
                            c.id
                        ));
                    }
                    Some(_) => {}
                    None if assoc.contexts.len() >= limits.max_contexts => {
                        answer.result = result::USER_REJECTION;
                        answer.reason = result::LOCAL_LIMIT_EXCEEDED;
                    }
                    None => assoc.contexts.push((c.id, interface)),
                }
                if answer.result != result::USER_REJECTION {
                    answer = ContextResult {
                        result: result::ACCEPTANCE,
                        reason: result::REASON_NOT_SPECIFIED,
                        transfer_syntax: pdu::NDR,
                    };
                    accepted = true;
                }
            }
        }
        results.push(answer);
    }
    Ok(results)
}
