//! What machines run: iPXE scripts and boot configurations, rendered by pure
//! functions from (machine, request, template) to text.

pub mod autoexec;
pub mod b2c;
pub mod refs;
pub mod scratch_volume;
pub mod template;
pub mod variables;
