//! Boot history: every request a machine makes, grouped into boots, kept in
//! an embedded database in the data directory. See `docs/observability.md`.
//!
//! - [`model`]: events, boots, machines' last sighting (also the admin API's JSON);
//! - [`boots`]: the rules that group requests into boots, as a pure state machine;
//! - [`store`]: the redb file, its tables, retention and queries;
//! - [`writer`]: the bounded channel and the thread that batches writes;
//! - [`duration`]: `--since 2h` in, `3m ago` out;
//! - [`text`]: events and boots in words, for the CLI and the status page.
//!
//! Nothing here knows about HTTP: the server feeds events in and answers the
//! admin API from the store; the CLI reads through the store or that API
//! (`cli/history.rs`).

pub mod boots;
pub mod duration;
pub mod model;
pub mod store;
pub mod text;
pub mod writer;

pub use model::{
    BOOT_SCRIPT_PATH, Boot, BootDetail, Event, EventQuery, Kind, MachineSeen, Outcome, Timestamp,
};
