//! Running as a service: log output on stderr or the journal ([`logging`]) and
//! readiness notifications to the service manager ([`notify`]).

mod log_line;
pub mod logging;
pub mod notify;
