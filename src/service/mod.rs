//! Running as a service: log output on stderr or the journal ([`logging`],
//! lines formatted by [`log_line`]) and
//! readiness notifications to the service manager ([`notify`]).

pub mod log_line;
pub mod logging;
pub mod notify;
