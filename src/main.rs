//! The `fiscald` command: the daemon, its configuration check and the emulators.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[derive(Parser)]
#[command(
    name = "fiscald",
    version,
    about = "Fiscal printer daemon: exactly-once receipts from a local API"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon until SIGTERM or SIGINT.
    Serve {
        #[arg(long, env = "FISCALD_CONFIG")]
        config: PathBuf,
        /// Record a wire trace of every device into this directory.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig {
        #[arg(long, env = "FISCALD_CONFIG")]
        config: PathBuf,
    },
    /// Device emulators on pseudo-terminals.
    #[command(subcommand)]
    Sim(SimCmd),
    /// Head office's side of `[fleet]`: read what the tills sent to NATS JetStream.
    #[command(subcommand)]
    Fleet(FleetCmd),
    /// The command-line client: talk to a running daemon over its API.
    Ctl(fiscald::ctl::CtlArgs),
    /// Find printers and card terminals: try the serial ports with read-only
    /// identification commands and print a configuration block for what answered.
    Probe(fiscald::probe::ProbeArgs),
    /// Write a support bundle (tar.gz): version, configuration without secrets, devices,
    /// queue and job statistics, the last jobs and errors, recent logs; card data masked.
    Diagnose(fiscald::diagnose::DiagnoseArgs),
    /// Play the device side of a POSNET wire trace on a pseudo-terminal and report the
    /// first place where the host's bytes differ from the recording.
    Replay(fiscald::replay::ReplayArgs),
}

#[derive(Subcommand)]
enum FleetCmd {
    /// Follow the stream and print events (a table, or JSON lines with --json).
    Tail(fiscald::fleet::tail::TailArgs),
}

#[derive(Subcommand)]
enum SimCmd {
    /// Emulate a POSNET fiscal printer.
    Posnet(PosnetSim),
    /// Emulate a Thermal (ESC P) fiscal printer (older Posnet, Novitus classic).
    Thermal(ThermalSim),
    /// Emulate a Novitus XML fiscal printer.
    #[command(name = "novitus-xml")]
    NovitusXml(PosnetSim),
    /// Emulate a ZVT card payment terminal (serial PTY or TCP).
    Zvt(ZvtSim),
    /// Emulate a Polish ECR-EFT (FROB) card payment terminal (serial PTY or TCP).
    #[command(name = "ecr-eft")]
    EcrEft(ZvtSim),
    /// Send a control command (e.g. "paper out") to a running emulator.
    Control {
        /// The emulator's control socket (`<link>.ctl` by default).
        socket: PathBuf,
        /// The command words.
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

#[derive(Args)]
struct PosnetSim {
    /// Publish the device as a symlink at this path.
    #[arg(long)]
    link: PathBuf,
    /// Keep the printer's fiscal memory in this JSON file.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Emulate the timing of a serial line at this speed.
    #[arg(long)]
    baud: Option<u32>,
    /// Control socket path (default: `<link>.ctl`).
    #[arg(long)]
    control: Option<PathBuf>,
    /// A fault to apply at start, in control-command syntax (repeatable), e.g. "paper out after 3".
    #[arg(long = "fault")]
    faults: Vec<String>,
}

#[derive(Args)]
struct ThermalSim {
    /// Publish the device as a symlink at this path.
    #[arg(long)]
    link: PathBuf,
    /// The command variants: `posnet` or `novitus` (payment type codes differ).
    #[arg(long, default_value = "posnet", value_parser = ["posnet", "novitus"])]
    dialect: String,
    /// The code page: `mazovia` or `cp1250`.
    #[arg(long, default_value = "mazovia", value_parser = ["mazovia", "cp1250"])]
    encoding: String,
    /// Keep the printer's fiscal memory in this JSON file.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Emulate the timing of a serial line at this speed.
    #[arg(long)]
    baud: Option<u32>,
    /// Control socket path (default: `<link>.ctl`).
    #[arg(long)]
    control: Option<PathBuf>,
    /// A fault to apply at start, in control-command syntax (repeatable).
    #[arg(long = "fault")]
    faults: Vec<String>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("endpoint").required(true).args(["link", "listen"])))]
struct ZvtSim {
    /// Serial transport: publish the device as a symlink at this path.
    #[arg(long)]
    link: Option<PathBuf>,
    /// TCP transport: listen on this address, e.g. 127.0.0.1:20007.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Keep the terminal's memory in this JSON file.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Emulate the timing of a serial line at this speed (serial only).
    #[arg(long)]
    baud: Option<u32>,
    /// Control socket path (default: `<link>.ctl`, else `<state>.ctl`).
    #[arg(long)]
    control: Option<PathBuf>,
}

/// An emulator's exit: success, or its error on stderr.
fn emulator_exit(what: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Stop flag set by SIGTERM and SIGINT.
fn stop_on_signals(what: &str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("{what}: cannot handle signal {sig}: {e}");
        }
    }
    stop
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FISCALD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Cmd::CheckConfig { config } => match fiscald::config::Config::load(&config) {
            Ok(c) => {
                println!("{}: ok ({} printer(s))", config.display(), c.printers.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Cmd::Serve { config, record } => match fiscald::config::Config::load(&config) {
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
            Ok(c) => match fiscald::serve::run(fiscald::config::Config {
                record_dir: record,
                ..c
            }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fiscald: {e:#}");
                    ExitCode::FAILURE
                }
            },
        },
        Cmd::Ctl(args) => fiscald::ctl::run(args),
        Cmd::Fleet(FleetCmd::Tail(args)) => fiscald::fleet::tail::main(args),
        Cmd::Probe(args) => fiscald::probe::main(args),
        Cmd::Diagnose(args) => fiscald::diagnose::main(args),
        Cmd::Replay(args) => fiscald::replay::main(args),
        Cmd::Sim(SimCmd::Posnet(o)) => {
            let opts = fiscald::sim::posnet::Options {
                link: o.link,
                state: o.state,
                baud: o.baud,
                control: o.control,
                faults: o.faults,
            };
            let what = "fiscald sim posnet";
            emulator_exit(what, fiscald::sim::posnet::run(opts, stop_on_signals(what)))
        }
        Cmd::Sim(SimCmd::Thermal(o)) => {
            let opts = fiscald::sim::thermal::Options {
                link: o.link,
                dialect: thermal::Dialect::from_name(&o.dialect).unwrap_or_default(),
                encoding: thermal::Encoding::from_name(&o.encoding).unwrap_or_default(),
                state: o.state,
                baud: o.baud,
                control: o.control,
                faults: o.faults,
            };
            let what = "fiscald sim thermal";
            emulator_exit(
                what,
                fiscald::sim::thermal::run(opts, stop_on_signals(what)),
            )
        }
        Cmd::Sim(SimCmd::NovitusXml(o)) => {
            let opts = fiscald::sim::novitus_xml::Options {
                link: o.link,
                state: o.state,
                baud: o.baud,
                control: o.control,
                faults: o.faults,
            };
            let what = "fiscald sim novitus-xml";
            emulator_exit(
                what,
                fiscald::sim::novitus_xml::run(opts, stop_on_signals(what)),
            )
        }
        Cmd::Sim(SimCmd::Zvt(o)) => {
            use fiscald::sim::zvt::{Endpoint, Options};
            let endpoint = match (o.link, o.listen) {
                (Some(link), None) => Endpoint::Serial(link),
                (None, Some(addr)) => Endpoint::Tcp(addr),
                _ => {
                    eprintln!("fiscald sim zvt: give exactly one of --link and --listen");
                    return ExitCode::from(2);
                }
            };
            let opts = Options {
                endpoint,
                state: o.state,
                baud: o.baud,
                control: o.control,
            };
            let what = "fiscald sim zvt";
            emulator_exit(what, fiscald::sim::zvt::run(opts, stop_on_signals(what)))
        }
        Cmd::Sim(SimCmd::EcrEft(o)) => {
            use fiscald::sim::ecr_eft::{Endpoint, Options};
            let endpoint = match (o.link, o.listen) {
                (Some(link), None) => Endpoint::Serial(link),
                (None, Some(addr)) => Endpoint::Tcp(addr),
                _ => {
                    eprintln!("fiscald sim ecr-eft: give exactly one of --link and --listen");
                    return ExitCode::from(2);
                }
            };
            let opts = Options {
                endpoint,
                state: o.state,
                baud: o.baud,
                control: o.control,
            };
            let what = "fiscald sim ecr-eft";
            emulator_exit(
                what,
                fiscald::sim::ecr_eft::run(opts, stop_on_signals(what)),
            )
        }
        Cmd::Sim(SimCmd::Control { socket, command }) => {
            match fiscald::sim::control::send_control(&socket, &command.join(" ")) {
                Ok(answer) => {
                    println!("{answer}");
                    if answer.starts_with("ok") {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(2)
                    }
                }
                Err(e) => {
                    eprintln!("{}: {e}", socket.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
