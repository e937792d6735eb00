//! `fiscald fleet tail`: follow a chain's stream and print what the tills sent, as a table
//! or as JSON lines, through an ordered (ephemeral) consumer: nothing is left on the
//! broker when it stops.

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use serde_json::Value;
use std::io::Write;

/// `fiscald fleet tail`.
#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// The broker, e.g. nats://127.0.0.1:4222.
    #[arg(long)]
    pub nats: String,
    /// Only this till's events.
    #[arg(long)]
    pub till: Option<String>,
    /// Only events with a till sequence number (the `seq` field, the number in
    /// `Nats-Msg-Id`) of at least SEQ.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
    /// One JSON object per line (the message as sent) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The stream to read.
    #[arg(long, default_value = "FISCALD")]
    pub stream: String,
    /// The subject prefix the tills use.
    #[arg(long, default_value = "fiscald")]
    pub subject_prefix: String,
    /// A NATS credentials file.
    #[arg(long)]
    pub credentials: Option<std::path::PathBuf>,
}

/// Run `fleet tail` until interrupted (or until the output is closed).
pub fn main(args: TailArgs) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fiscald fleet tail: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(tail(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fiscald fleet tail: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn tail(args: TailArgs) -> anyhow::Result<()> {
    if let Some(t) = &args.till
        && !super::config::is_subject_token(t)
    {
        anyhow::bail!("--till {t:?} is not a subject token");
    }
    let mut options = async_nats::ConnectOptions::new().name("fiscald fleet tail");
    if let Some(c) = &args.credentials {
        options = options
            .credentials_file(c)
            .await
            .with_context(|| format!("cannot read {}", c.display()))?;
    }
    let client = options
        .connect(args.nats.as_str())
        .await
        .with_context(|| format!("cannot connect to {}", args.nats))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(&args.stream)
        .await
        .with_context(|| format!("no stream {} on {}", args.stream, args.nats))?;
    let filter = match &args.till {
        Some(t) => format!("{}.{t}.>", args.subject_prefix),
        None => format!("{}.>", args.subject_prefix),
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("cannot create an ordered consumer")?;
    let mut messages = consumer
        .messages()
        .await
        .context("cannot read the stream")?;
    if !args.json {
        line(&format!(
            "{:>8}  {:<16} {:>6}  {:<24}  {:<8} {}",
            "STREAM", "TILL", "SEQ", "AT", "TYPE", "WHAT"
        ))?;
    }
    while let Some(m) = messages.next().await {
        let m = m.context("the stream failed")?;
        let stream_seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
        let text = String::from_utf8_lossy(&m.payload).into_owned();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let seq = v["seq"].as_u64().unwrap_or(0);
        if args.since.is_some_and(|s| seq < s) {
            continue;
        }
        if args.json {
            line(&text)?;
        } else {
            line(&format!(
                "{stream_seq:>8}  {:<16} {seq:>6}  {:<24}  {:<8} {}",
                v["till"].as_str().unwrap_or("?"),
                v["at"].as_str().unwrap_or(""),
                v["type"].as_str().unwrap_or("?"),
                summary(&v)
            ))?;
        }
    }
    Ok(())
}

/// One event in a few words.
pub fn summary(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().map(String::from).unwrap_or_default();
    let grosze = |k: &str| v[k].as_u64().map(money);
    match v["type"].as_str() {
        Some("job") => {
            let mut out = format!(
                "{} {} job {} on {}",
                s("kind"),
                s("event"),
                v["job"],
                s("device")
            );
            if let Some(n) = v["receipt_number"].as_u64() {
                out.push_str(&format!(" receipt {n}"));
            }
            if let Some(t) = grosze("total") {
                out.push_str(&format!(" total {t}"));
            }
            if let Some(c) = v.get("card").filter(|c| c.is_object()) {
                out.push_str(&format!(
                    " card {} {}",
                    c["masked_pan"].as_str().unwrap_or("?"),
                    if c["approved"] == true {
                        "approved"
                    } else {
                        "declined"
                    }
                ));
            }
            out
        }
        Some("device") => format!("{} {}: {}", s("kind"), s("device"), s("state")),
        Some("daily_report") => format!(
            "daily report {} on {} for {}: {} receipts, total {}",
            v["report_number"],
            s("printer"),
            s("date"),
            v["receipts"],
            grosze("total").unwrap_or_default()
        ),
        Some("audit") => format!("{} {} by {}", s("operation"), s("outcome"), s("principal")),
        _ => String::new(),
    }
}

/// Grosze as złote: `1234` → `12.34`.
fn money(g: u64) -> String {
    format!("{}.{:02}", g / 100, g % 100)
}

fn line(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").and_then(|()| out.flush())?;
    Ok(())
}
