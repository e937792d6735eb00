//! `fiscald ctl fleet`: the fleet link as `/v1/health` shows it.

use super::{ANSWER_TIMEOUT, Ctl, EXIT_JOB_FAILED, EXIT_OK, Failure, R, emit};
use crate::api::types::Health;

impl Ctl {
    /// Print the fleet link; exit 1 when it is not connected or the outbox is full, and a
    /// clear message when `[fleet]` is not configured.
    pub(super) async fn fleet(&mut self) -> R<u8> {
        let health: Health = self.client.get("/v1/health", ANSWER_TIMEOUT).await?;
        let Some(f) = health.fleet else {
            return Err(Failure {
                code: EXIT_JOB_FAILED,
                message: "the fleet link is off: no [fleet] in the daemon's configuration".into(),
                body: None,
            });
        };
        if self.json {
            self.print_json(&f)?;
        } else {
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            emit(&format!(
                "fleet {} (till {}, stream {})",
                f.state, f.till, f.stream
            ))?;
            emit(&format!(
                "  connected        {}",
                if f.connected { "yes" } else { "no" }
            ))?;
            emit(&format!("  backlog          {} rows", f.backlog))?;
            emit(&format!(
                "  oldest unsent    {}",
                or_dash(f.oldest_unsent_age.map(|s| format!("{s} s ago")))
            ))?;
            emit(&format!(
                "  last ack         {} (seq {})",
                or_dash(f.last_ack),
                or_dash(f.last_ack_seq.map(|s| s.to_string()))
            ))?;
            emit(&format!("  last seq         {}", f.last_seq))?;
            emit(&format!(
                "  outbox           {} rows, {} bytes{}",
                f.outbox_rows,
                f.outbox_bytes,
                if f.outbox_full {
                    ", FULL: unsent rows past the bound"
                } else {
                    ""
                }
            ))?;
            emit(&format!(
                "  published        {} ({} duplicates)",
                f.published, f.duplicates
            ))?;
            if let Some(e) = &f.last_error {
                emit(&format!("  last error       {e}"))?;
            }
        }
        Ok(if f.connected && !f.outbox_full {
            EXIT_OK
        } else {
            EXIT_JOB_FAILED
        })
    }
}
