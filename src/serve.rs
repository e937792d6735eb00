//! `fiscald serve`: wires the journal, the printer tasks, the emulators and the API
//! together, and shuts them down in order on SIGTERM/SIGINT.

use crate::api::{self, AppState, Tokens};
use crate::config::{Config, PrinterProtocol, TerminalProtocol};
use crate::device::DeviceState;
use crate::device::terminal::PaymentTerminal;
use crate::drivers::ecr_eft::EcrEft;
use crate::drivers::novitus_xml::NovitusXmlPrinter;
use crate::drivers::posnet::PosnetPrinter;
use crate::drivers::zvt::Zvt;
use crate::journal::Journal;
use crate::printer::{PrinterHandle, PrinterTask};
use crate::terminal::{TerminalHandle, TerminalTask};
use anyhow::Context;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
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
    let mut tasks = tokio::task::JoinSet::new();
    // `[fleet]`: the outbox and its publisher; without it no broker code runs.
    let fleet = match &config.fleet {
        Some(f) => Some(crate::fleet::start(&journal, f, &mut tasks, &shutdown)?),
        None => None,
    };
    let device_events = crate::fleet::DevicePublishers {
        bus: bus.clone(),
        fleet: fleet.as_ref().map(|(_, sink)| sink.clone()),
    };

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
            match p.protocol {
                PrinterProtocol::Posnet => {
                    let opts = crate::sim::posnet::Options {
                        link: link.clone(),
                        state: p.sim_state.clone(),
                        baud: Some(p.baud),
                        control: None,
                        faults: Vec::new(),
                    };
                    sims.push(crate::sim::posnet::spawn(opts, sim_stop.clone())?);
                }
                PrinterProtocol::Thermal => {
                    let opts = crate::sim::thermal::Options {
                        link: link.clone(),
                        dialect: p.thermal_dialect(),
                        encoding: p.thermal_encoding(),
                        state: p.sim_state.clone(),
                        baud: Some(p.baud),
                        control: None,
                        faults: Vec::new(),
                    };
                    sims.push(crate::sim::thermal::spawn(opts, sim_stop.clone())?);
                }
                PrinterProtocol::NovitusXml => {
                    let opts = crate::sim::posnet::Options {
                        link: link.clone(),
                        state: p.sim_state.clone(),
                        baud: Some(p.baud),
                        control: None,
                        faults: Vec::new(),
                    };
                    sims.push(crate::sim::novitus_xml::spawn(opts, sim_stop.clone())?);
                }
            }
            tracing::info!(printer = %p.id, link = %link.display(), control = %format!("{}.ctl", link.display()), "built-in emulator started");
            link.to_string_lossy().into_owned()
        } else {
            p.port.clone()
        };
        printers.insert(
            p.id.clone(),
            Arc::new(PrinterHandle::new(p.clone(), port_path).with_events(device_events.clone())),
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
            sims.push(match t.protocol {
                TerminalProtocol::Zvt => crate::sim::zvt::spawn(opts, sim_stop.clone())?,
                TerminalProtocol::EcrEft => crate::sim::ecr_eft::spawn(opts, sim_stop.clone())?,
            });
            tracing::info!(terminal = %t.id, link = %link.display(), "built-in terminal emulator started");
            link.to_string_lossy().into_owned()
        } else {
            t.port.clone()
        };
        terminals.insert(
            t.id.clone(),
            Arc::new(TerminalHandle::new(t.clone(), target).with_events(device_events.clone())),
        );
    }
    let terminals = Arc::new(terminals);
    let recorded = printers
        .values()
        .map(|h| crate::trace::RecordedPort {
            id: &h.config.id,
            record: h.config.record,
            port: &h.target,
            protocol: match h.config.protocol {
                PrinterProtocol::Posnet => crate::trace::Protocol::Posnet,
                PrinterProtocol::Thermal => crate::trace::Protocol::Thermal,
                PrinterProtocol::NovitusXml => crate::trace::Protocol::NovitusXml,
            },
        })
        // ECR-EFT has no wire trace yet (the configuration refuses `record` for it).
        .chain(terminals.values().filter_map(|h| {
            Some(crate::trace::RecordedPort {
                id: &h.config.id,
                record: h.config.record,
                port: &h.target,
                protocol: match h.config.protocol {
                    TerminalProtocol::Zvt => crate::trace::Protocol::Zvt,
                    TerminalProtocol::EcrEft => return None,
                },
            })
        }));
    crate::trace::start_recording(&config, recorded)?;

    tasks.spawn(
        bus.clone()
            .follow_jobs(journal.clone(), job_changes, shutdown.clone()),
    );
    for handle in printers.values() {
        let (h, j, e, s) = (
            handle.clone(),
            journal.clone(),
            events.clone(),
            shutdown.clone(),
        );
        // The driver is picked by the entry's `protocol`.
        match handle.config.protocol {
            PrinterProtocol::Posnet => {
                tasks.spawn(PrinterTask::<PosnetPrinter>::new(h, j, e, s).run());
            }
            PrinterProtocol::Thermal => {
                tasks.spawn(
                    PrinterTask::<crate::drivers::thermal::ThermalPrinter>::new(h, j, e, s).run(),
                );
            }
            PrinterProtocol::NovitusXml => {
                tasks.spawn(PrinterTask::<NovitusXmlPrinter>::new(h, j, e, s).run());
            }
        }
    }
    for handle in terminals.values() {
        // The driver for the terminal's protocol.
        match handle.config.protocol {
            TerminalProtocol::Zvt => {
                let zvt = Zvt::new(handle.config.clone(), handle.target.clone());
                tasks.spawn(
                    terminal_task(
                        handle, &journal, &events, &shutdown, &printers, &config, zvt,
                    )
                    .run(),
                );
            }
            TerminalProtocol::EcrEft => {
                let driver = EcrEft::new(handle.config.clone(), handle.target.clone());
                tasks.spawn(
                    terminal_task(
                        handle, &journal, &events, &shutdown, &printers, &config, driver,
                    )
                    .run(),
                );
            }
        }
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
        fleet: fleet.map(|(status, _)| status),
    };
    // The loopback TCP listener is bound before the socket, so that once the socket answers
    // (what clients and tests wait for) every listener does.
    let tcp = match config.api.listen {
        Some(addr) => Some(bind_tcp(addr).with_context(|| format!("cannot listen on {addr}"))?),
        None => None,
    };
    // The NoviAPI facade's listener, bound before the socket too.
    let noviapi = match &config.noviapi {
        Some(n) => Some((
            bind_tcp(n.listen)
                .with_context(|| format!("[noviapi] cannot listen on {}", n.listen))?,
            crate::noviapi::Facade::new(state.clone(), n, &config.api.allowed_hosts)?,
        )),
        None => None,
    };
    // The API socket: handed over by systemd (socket activation), else bound here.
    let socket = &config.api.socket;
    let (unix, activated) = match inherited_unix_listener()? {
        Some(listener) => (listener, true),
        None => (bind_unix_socket(socket)?, false),
    };
    let socket_name = match unix
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
    {
        Some(p) => p.display().to_string(),
        None => socket.display().to_string(),
    };
    if activated {
        tracing::info!(socket = %socket_name, "API socket inherited via LISTEN_FDS (socket activation)");
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
    )
    .layer(axum::middleware::from_fn_with_state(
        Arc::new(origin_policy(&config, false, &state.audit)),
        api::origin::guard,
    ));
    servers.spawn(serve_http(
        unix,
        app,
        shutdown.clone(),
        "socket",
        config.api.max_socket_connections,
    ));
    if let Some(tcp) = tcp {
        config
            .api
            .token_file
            .as_ref()
            .context("[api] listen needs token_file")?;
        let addr = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let app = api::router(
            state.clone(),
            api::Auth {
                tokens,
                has_token_file: true,
                anonymous_role: None,
                listener: "tcp",
            },
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(origin_policy(&config, true, &state.audit)),
            api::origin::guard,
        ));
        servers.spawn(serve_http(
            tcp,
            app,
            shutdown.clone(),
            "tcp",
            config.api.max_connections,
        ));
        tracing::info!(addr, "listening on loopback TCP (bearer token required)");
    }
    if let Some((listener, facade)) = noviapi {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        servers.spawn(serve_http(
            listener,
            crate::noviapi::router(facade),
            shutdown.clone(),
            "noviapi",
            config.api.max_connections,
        ));
        tracing::info!(addr, "NoviAPI facade listening on loopback TCP");
    }
    tracing::info!(socket = %socket_name, "fiscald is listening");
    println!("fiscald listening on {socket_name}");
    println!("try: curl --unix-socket {socket_name} http://localhost/v1/devices");

    // systemd: READY=1 once every device has been tried, the watchdog while running.
    tokio::spawn(notify_ready(
        printers.clone(),
        terminals.clone(),
        socket_name.clone(),
        shutdown.clone(),
    ));
    let watchdog = sd_notify::watchdog_enabled()
        .map(|interval| tokio::spawn(watchdog(journal.clone(), interval)));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing the step in progress, then stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing the step in progress, then stopping"),
    }
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: finishing the step in progress"),
    ]);
    shutdown.cancel();
    while let Some(r) = servers.join_next().await {
        if let Err(e) = r {
            tracing::warn!(error = %e, "API server task failed");
        }
    }
    while tasks.join_next().await.is_some() {}
    sim_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in sims {
        let _ = s.join();
    }
    if !activated {
        let _ = std::fs::remove_file(socket);
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long a client may take to send a request's headers, counted from when the daemon
/// starts reading them. An idle keep-alive connection is closed after the same time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body, counted from the end of its
/// headers (a total, not an idle time: one byte a second does not keep it alive).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight before it stops serving them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `READY=1` waits for the devices to be tried once.
const PROBE_WAIT: Duration = Duration::from_secs(30);

/// Connections the kernel keeps waiting for the TCP listener while its connection budget
/// is used up: they cost the daemon no file descriptor.
const TCP_BACKLOG: u32 = 4096;

/// Bind the loopback TCP listener with a deep backlog (see [`TCP_BACKLOG`]).
fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(TCP_BACKLOG)
}

/// The browser defences of one listener (`cors` on the TCP listener only).
fn origin_policy(
    config: &Config,
    cors: bool,
    audit: &crate::journal::AuditWriter,
) -> api::origin::OriginPolicy {
    api::origin::OriginPolicy {
        allowed_hosts: config.api.allowed_hosts.clone(),
        cors_origins: config.api.cors_origins.clone(),
        cors,
        audit: Some((if cors { "tcp" } else { "socket" }, audit.clone())),
    }
}

/// The Unix listener systemd passed as the first socket of `LISTEN_FDS`, if any.
fn inherited_unix_listener() -> anyhow::Result<Option<tokio::net::UnixListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    if fds.len() > 1 {
        tracing::warn!(
            count = fds.len(),
            "LISTEN_FDS passes several sockets; only the first is used (the API socket)"
        );
    }
    let listener = fds
        .take_unix_listener(0)
        .context("LISTEN_FDS: the first socket is not a Unix stream socket")?
        .context("LISTEN_FDS: the first socket was already taken")?;
    listener.set_nonblocking(true)?;
    Ok(Some(tokio::net::UnixListener::from_std(listener)?))
}

/// Bind the configured socket path: replace a stale socket, create the directory, mode 0660.
fn bind_unix_socket(socket: &Path) -> anyhow::Result<tokio::net::UnixListener> {
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
    Ok(unix)
}

/// Serve the API on one listener (the Unix socket or loopback TCP) until `shutdown`, then
/// stop accepting and let the requests in flight finish (at most [`DRAIN_TIMEOUT`]).
///
/// At most `max_connections` connections are open at once on this listener; more wait in
/// the kernel's backlog, holding none of the daemon's file descriptors. Each listener has its
/// own budget, so a flood on loopback TCP cannot starve the Unix socket.
///
/// Every connection gets hyper's [`HEADER_READ_TIMEOUT`] and every request body the
/// [`BODY_READ_TIMEOUT`], so a client that trickles its request cannot keep a connection
/// (or a printer's queue) waiting.
async fn serve_http<L>(
    mut listener: L,
    app: axum::Router,
    shutdown: CancellationToken,
    name: &'static str,
    max_connections: usize,
) where
    L: axum::serve::Listener,
{
    let budget = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let service = tower::ServiceBuilder::new()
        .map_request(|req: axum::http::Request<hyper::body::Incoming>| {
            req.map(|body| axum::body::Body::new(ReadDeadline::new(body, BODY_READ_TIMEOUT)))
        })
        .layer(crate::drain::DrainLayer::new())
        .service(app);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = budget.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        if budget.available_permits() == 0 {
            tracing::warn!(
                listener = name,
                max_connections,
                "API connection limit reached; new connections wait"
            );
        }
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let conn = http.serve_connection(
            TokioIo::new(io),
            hyper_util::service::TowerToHyperService::new(service.clone()),
        );
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                tracing::debug!(listener = name, error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            open = connections.len(),
            "requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway"
        );
    }
}

/// A request body that fails once `limit` has passed since the request's headers were read.
struct ReadDeadline<B> {
    body: B,
    deadline: tokio::time::Instant,
    limit: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> ReadDeadline<B> {
    fn new(body: B, limit: Duration) -> Self {
        ReadDeadline {
            body,
            deadline: tokio::time::Instant::now() + limit,
            limit,
            sleep: None,
        }
    }
}

impl<B> hyper::body::Body for ReadDeadline<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, axum::BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                "the body was not received within {} s",
                this.limit.as_secs()
            )
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Tell systemd (a no-op without `NOTIFY_SOCKET`).
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The terminal task for `handle`, driven by `driver`.
fn terminal_task<D: PaymentTerminal>(
    handle: &Arc<TerminalHandle>,
    journal: &Journal,
    events: &broadcast::Sender<crate::journal::JobId>,
    shutdown: &CancellationToken,
    printers: &Arc<BTreeMap<String, Arc<PrinterHandle>>>,
    config: &Config,
    driver: D,
) -> TerminalTask<D> {
    let printers = printers.clone();
    TerminalTask {
        handle: handle.clone(),
        journal: journal.clone(),
        events: events.clone(),
        shutdown: shutdown.clone(),
        wake_printer: Arc::new(move |id: &str| {
            if let Some(p) = printers.get(id) {
                p.wake.notify_one();
            }
        }),
        reverse_unattached: config.sales.reverse_unattached,
        driver,
    }
}

/// `READY=1` once every printer and terminal task has connected or reported why not (at
/// most [`PROBE_WAIT`]), with a `STATUS=` line naming each device's state.
async fn notify_ready(
    printers: Arc<BTreeMap<String, Arc<PrinterHandle>>>,
    terminals: Arc<BTreeMap<String, Arc<TerminalHandle>>>,
    socket: String,
    shutdown: CancellationToken,
) {
    const NOT_YET: &str = "not connected yet";
    let started = tokio::time::Instant::now();
    loop {
        let printers_tried = printers.values().all(|p| {
            let s = p.status();
            s.state != DeviceState::Offline || s.last_error.as_deref() != Some(NOT_YET)
        });
        let terminals_tried = terminals.values().all(|t| {
            let s = t.status();
            s.state != DeviceState::Offline || s.last_error.as_deref() != Some(NOT_YET)
        });
        if (printers_tried && terminals_tried) || started.elapsed() >= PROBE_WAIT {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
    let mut devices = Vec::new();
    for (id, p) in printers.iter() {
        devices.push(format!("{id} {}", state_name(p.status().state)));
    }
    for (id, t) in terminals.iter() {
        devices.push(format!("{id} {}", state_name(t.status().state)));
    }
    let status = format!("API on {socket}; {}", devices.join(", "));
    tracing::info!(status = %status, "ready");
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
}

fn state_name(state: DeviceState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{state:?}").to_lowercase())
}

/// `WATCHDOG=1` every half `interval` while the runtime and the journal answer.
async fn watchdog(journal: Journal, interval: Duration) {
    let period = interval / 2;
    tracing::info!(?interval, "systemd watchdog enabled");
    loop {
        let check = journal.run(|j| j.get(0).is_ok());
        match tokio::time::timeout(period, check).await {
            Ok(true) => notify(&[sd_notify::NotifyState::Watchdog]),
            Ok(false) => tracing::warn!("watchdog: the journal cannot be read; not pinging"),
            Err(_) => tracing::warn!("watchdog: the journal did not answer; not pinging"),
        }
        tokio::time::sleep(period).await;
    }
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
