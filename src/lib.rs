//! bootgate: authenticated network boot for bare-metal fleets.
//!
//! One binary holds a small CA that enrolls machines ([`ca`], [`manage`]), an
//! HTTPS boot server that identifies each machine by its TLS client certificate
//! ([`server`]), the iPXE/boot-script rendering it serves ([`bootcfg`]), and
//! the per-machine image builder ([`image`], on top of [`disk`]), checked by
//! real boots ([`vm`]). Everything the server knows lives in the data
//! directory ([`datadir`]: machines, profiles, shared assets), optionally
//! kept in git ([`gitcfg`]); what machines did is recorded as boot history
//! ([`events`]); machines may get S3 scratch space ([`scratch`]). The layers
//! and where things go: `docs/architecture.md`.

pub mod bootcfg;
pub mod ca;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod disk;
pub mod events;
pub mod fsutil;
pub mod gitcfg;
pub mod image;
pub mod manage;
pub mod names;
pub mod scratch;
pub mod server;
pub mod service;
pub mod vm;
