//! `fiscald serve`: wires the journal, the printer tasks, the emulators and the API
//! together, and shuts them down in order on SIGTERM/SIGINT.

use crate::api::{self, AppState, Tokens};
use crate::config::Config;
use crate::journal::Journal;
use crate::printer::{PrinterHandle, PrinterTask};
use crate::terminal::{TerminalHandle, TerminalTask};
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Run the daemon until a stop signal.
pub fn run(config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Tokens first, so a bad token file stops the daemon before anything starts. They are
    // required on TCP; on the socket a token is optional and gives its own role.
    let tokens = match &config.api.token_file {
        Some(path) => Tokens::load(path).map_err(anyhow::Error::msg)?,
        None => Tokens::default(),
    };
    let journal = Journal::open(&config.journal.path)
        .with_context(|| format!("cannot open the journal {}", config.journal.path.display()))?;
    let shutdown = CancellationToken::new();
    let (events, _) = broadcast::channel(1024);
    // Metrics first, so nothing counted at startup is lost; then the event bus, which
    // turns job changes (`events`) and device status changes into `GET /v1/events`.
    crate::metrics::install();
    let bus = crate::events::EventBus::default();
    let job_changes = events.subscribe();

    // Built-in emulators (port = "sim") run on their own threads behind real PTYs.
    let sim_stop = Arc::new(AtomicBool::new(false));
    let mut sims = Vec::new();
    let mut printers = BTreeMap::new();
    let run_dir = config
        .api
        .socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.to_path_buf())
        .unwrap_or_else(|| ".".into());
    for p in &config.printers {
        let port_path = if p.port == "sim" {
            let link = run_dir.join(format!("fiscald-sim-{}.tty", p.id));
            let opts = crate::sim::posnet::Options {
                link: link.clone(),
                state: p.sim_state.clone(),
                baud: Some(p.baud),
                control: None,
                faults: Vec::new(),
            };
            sims.push(crate::sim::posnet::spawn(opts, sim_stop.clone())?);
            tracing::info!(printer = %p.id, link = %link.display(), control = %format!("{}.ctl", link.display()), "built-in emulator started");
            link.to_string_lossy().into_owned()
        } else {
            p.port.clone()
        };
        printers.insert(
            p.id.clone(),
            Arc::new(PrinterHandle::new(p.clone(), port_path).with_events(bus.clone())),
        );
    }
    let printers = Arc::new(printers);
    let mut terminals = BTreeMap::new();
    for t in &config.terminals {
        let target = if t.port == "sim" {
            let link = run_dir.join(format!("fiscald-sim-{}.tty", t.id));
            let opts = crate::sim::zvt::Options {
                endpoint: crate::sim::zvt::Endpoint::Serial(link.clone()),
                state: t.sim_state.clone(),
                baud: Some(t.baud),
                control: None,
            };
            sims.push(crate::sim::zvt::spawn(opts, sim_stop.clone())?);
            tracing::info!(terminal = %t.id, link = %link.display(), "built-in terminal emulator started");
            link.to_string_lossy().into_owned()
        } else {
            t.port.clone()
        };
        terminals.insert(
            t.id.clone(),
            Arc::new(TerminalHandle::new(t.clone(), target).with_events(bus.clone())),
        );
    }
    let terminals = Arc::new(terminals);
    crate::trace::start_recording(&config, &printers, &terminals)?;

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(
        bus.clone()
            .follow_jobs(journal.clone(), job_changes, shutdown.clone()),
    );
    for handle in printers.values() {
        let task = PrinterTask {
            handle: handle.clone(),
            journal: journal.clone(),
            events: events.clone(),
            shutdown: shutdown.clone(),
        };
        tasks.spawn(task.run());
    }
    for handle in terminals.values() {
        let task = TerminalTask {
            handle: handle.clone(),
            journal: journal.clone(),
            events: events.clone(),
            shutdown: shutdown.clone(),
            printers: printers.clone(),
            reverse_unattached: config.sales.reverse_unattached,
        };
        tasks.spawn(task.run());
    }
    if !terminals.is_empty() {
        tasks.spawn(expire_sales(
            journal.clone(),
            config.sales.print_deadline,
            events.clone(),
            shutdown.clone(),
        ));
    }

    let submitter = crate::journal::Submitter::start(journal.clone())
        .context("cannot start the journal writer")?;
    let audit = crate::journal::AuditWriter::start(journal.clone())
        .context("cannot start the audit log writer")?;
    let state = AppState {
        journal: journal.clone(),
        submitter,
        audit,
        printers: printers.clone(),
        terminals: terminals.clone(),
        events,
        bus,
        sessions: Default::default(),
        shutdown: shutdown.clone(),
    };
    let socket = &config.api.socket;
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(socket).ok();
        } else {
            anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it",
                socket.display()
            );
        }
    }
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let unix = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    }
    let mut servers = tokio::task::JoinSet::new();
    let app = api::router(
        state.clone(),
        api::Auth {
            tokens: tokens.clone(),
            has_token_file: config.api.token_file.is_some(),
            anonymous_role: Some(config.api.socket_role),
            listener: "socket",
        },
    );
    let stop = shutdown.clone();
    servers.spawn(async move {
        axum::serve(unix, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    if let Some(addr) = config.api.listen {
        config
            .api
            .token_file
            .as_ref()
            .context("[api] listen needs token_file")?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let app = api::router(
            state.clone(),
            api::Auth {
                tokens,
                has_token_file: true,
                anonymous_role: None,
                listener: "tcp",
            },
        );
        let stop = shutdown.clone();
        servers.spawn(async move {
            axum::serve(tcp, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        tracing::info!(%addr, "listening on loopback TCP (bearer token required)");
    }
    tracing::info!(socket = %socket.display(), "fiscald is ready");
    println!("fiscald listening on {}", socket.display());
    println!(
        "try: curl --unix-socket {} http://localhost/v1/devices",
        socket.display()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing the step in progress, then stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing the step in progress, then stopping"),
    }
    shutdown.cancel();
    while let Some(r) = servers.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "API server ended with an error");
        }
    }
    while tasks.join_next().await.is_some() {}
    sim_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in sims {
        let _ = s.join();
    }
    let _ = std::fs::remove_file(socket);
    tracing::info!("stopped");
    Ok(())
}

/// Settles sales whose receipt has not started printing within `[sales] print_deadline`.
async fn expire_sales(
    journal: Journal,
    deadline_s: f64,
    events: broadcast::Sender<crate::journal::JobId>,
    shutdown: CancellationToken,
) {
    let deadline = chrono::Duration::milliseconds((deadline_s * 1000.0) as i64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
        let cutoff =
            (chrono::Utc::now() - deadline).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match journal.run(move |j| j.expire_sales(&cutoff)).await {
            Ok(settled) => {
                for sale in settled {
                    tracing::warn!(
                        sale,
                        "the sale's receipt missed its print deadline; the sale needs attention"
                    );
                    let _ = events.send(sale);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot check sale deadlines"),
        }
    }
}
