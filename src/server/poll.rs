//! Polling: with `poll_secs` in `[git]`, the server syncs its boot
//! configuration on its own. The first sync runs at start-up; each report is
//! logged when it differs from the previous one.

use std::sync::Arc;
use std::time::Duration;

use super::state::AppState;
use crate::gitcfg::{self, Report};

pub fn spawn(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let every = Duration::from_secs(state.config.git.as_ref()?.poll_secs?);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = String::new();
        loop {
            tick.tick().await;
            let (dir, config) = (state.dir.clone(), state.config.clone());
            let said = match tokio::task::spawn_blocking(move || gitcfg::sync(&dir, &config)).await
            {
                Ok(Ok(report)) => {
                    let text = report.to_string();
                    if text != last {
                        match report {
                            Report::Rejected { .. } => tracing::warn!("config sync: {text}"),
                            _ => tracing::info!("config sync: {text}"),
                        }
                    }
                    text
                }
                Ok(Err(err)) => {
                    let text = format!("{err:#}");
                    if text != last {
                        tracing::warn!(
                            "config sync failed, still serving the last good commit: {text}"
                        );
                    }
                    text
                }
                Err(err) => format!("{err}"),
            };
            last = said;
        }
    }))
}
