//! SMB: the user-space side of the in-kernel server ksmbd.
pub mod dcerpc;
