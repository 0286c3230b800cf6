//! bootgate: authenticated network boot for bare-metal fleets.
//!
//! One binary holds a small CA that enrolls machines ([`ca`], [`registry`]), an
//! HTTPS boot server that identifies each machine by its TLS client certificate
//! ([`server`]), the iPXE/boot-script rendering it serves ([`bootcfg`]), and
//! the per-machine image builder ([`image`], on top of [`disk`]). Machines
//! can share a boot configuration ([`profiles`]) and large files ([`assets`]).
//! What machines did is recorded as boot history ([`events`]).

pub mod assets;
pub mod bootcfg;
pub mod ca;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod disk;
pub mod enrollment;
pub mod events;
pub mod fsutil;
pub mod gitcfg;
pub mod image;
pub mod init;
pub mod logging;
pub mod names;
pub mod notify;
pub mod permcheck;
pub mod profiles;
pub mod registry;
pub mod scratch;
pub mod server;
pub mod statefile;
pub mod vm;
