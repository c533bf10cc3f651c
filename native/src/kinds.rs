//! The event kinds the native path produces, by the values of `bastion_guard.events.Kind`.
//!
//! Records carry a kind as its index in `NAMES`; Python builds its code table from these names at load
//! time and refuses the library if one is unknown, so the two enums cannot drift apart silently.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    AuthFailure,
    InvalidUser,
    MaxAuthExceeded,
    TooManyAuthFailures,
    AuthSuccess,
    PreauthClose,
    PreauthDisconnect,
    PreauthTimeout,
    HandshakeError,
    NegotiationFailure,
    Connection,
    Disconnect,
    SessionOpened,
    SessionClosed,
    PamAuthFailure,
    PamMoreFailures,
}

/// `Kind.value` in Python, in the order of the Rust enum (its discriminants).
pub const NAMES: [&str; 16] = [
    "auth_failure",
    "invalid_user",
    "max_auth_exceeded",
    "too_many_auth_failures",
    "auth_success",
    "preauth_close",
    "preauth_disconnect",
    "preauth_timeout",
    "handshake_error",
    "negotiation_failure",
    "connection",
    "disconnect",
    "session_opened",
    "session_closed",
    "pam_auth_failure",
    "pam_more_failures",
];
