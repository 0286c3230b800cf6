//! Ctrl-C during an image build: the first SIGINT (or SIGTERM) sets a flag
//! that the long steps check, so the build stops with an error and removes
//! its temporary files instead of dying half-way; a second one ends the
//! process at once.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

static FLAG: AtomicBool = AtomicBool::new(false);

/// The build was stopped by a signal.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: the image was not written, and its temporary files were removed")]
pub struct Interrupted;

/// Makes SIGINT and SIGTERM stop the build at its next check instead of
/// killing the process (a second signal still kills it).
pub fn install() -> Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, &FLAG)
            .context("handling Ctrl-C")?;
        signal_hook::flag::register(signal, &FLAG).context("handling Ctrl-C")?;
    }
    Ok(())
}

/// Fails with [`Interrupted`] once a signal came.
pub fn check() -> std::result::Result<(), Interrupted> {
    if FLAG.load(Ordering::Relaxed) {
        Err(Interrupted)
    } else {
        Ok(())
    }
}
