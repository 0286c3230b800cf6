//! The commands that change the data directory: `init` creates it ([`init`]),
//! enrollment adds, adopts and revokes machines ([`enrollment`]). Each takes the
//! data directory's lock and commits atomically, so an interrupted command
//! leaves the previous good state.

pub mod enrollment;
pub mod init;
