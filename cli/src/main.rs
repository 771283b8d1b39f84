//! `wa`: the WhatsApp pipeline's command line.
//!
//! - `wa simulator`: run the Cloud API simulator (the Graph API for local runs and tests).
//! - `wa sign FILE`: print the `X-Hub-Signature-256` header Meta would send for a payload file.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wa_simulator::{SimConfig, Simulator};

#[derive(Parser)]
#[command(name = "wa", version, about = "Self-hosted WhatsApp Business pipeline: local tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the WhatsApp Cloud API simulator on loopback until Ctrl-C.
    Simulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// The bearer token it accepts.
        #[arg(long, default_value = "sim-access-token", env = "WA_SIM_ACCESS_TOKEN")]
        access_token: String,
        /// The app secret that signs its status webhooks.
        #[arg(long, default_value = "sim-app-secret", env = "WA_SIM_APP_SECRET")]
        app_secret: String,
        /// Where to post status webhooks (sent, delivered, read); none: no webhooks.
        #[arg(long)]
        webhook_url: Option<String>,
        /// Messages per second per business number before 130429.
        #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u32).range(1..=1000))]
        messages_per_second: u32,
        /// Messages to one recipient in a burst before 131056.
        #[arg(long, default_value_t = 45, value_parser = clap::value_parser!(u32).range(1..))]
        pair_burst: u32,
        /// Latency added to every send, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Print the X-Hub-Signature-256 header for a payload file (exact bytes, HMAC-SHA256).
    Sign {
        /// The payload file.
        file: std::path::PathBuf,
        /// The app secret.
        #[arg(long, env = "WA_APP_SECRET")]
        app_secret: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sign { file, app_secret } => match std::fs::read(&file) {
            Ok(body) => {
                println!("X-Hub-Signature-256: {}", wa_core::signature::sign(app_secret.as_bytes(), &body));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("wa sign: cannot read {}: {error}", file.display());
                ExitCode::from(2)
            }
        },
        Command::Simulator {
            listen,
            access_token,
            app_secret,
            webhook_url,
            messages_per_second,
            pair_burst,
            latency_ms,
        } => {
            let config = SimConfig {
                access_token,
                app_secret,
                webhook_url,
                messages_per_second,
                pair_burst,
                latency: Duration::from_millis(latency_ms),
                ..SimConfig::default()
            };
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("wa simulator: cannot start a runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let simulator = match Simulator::start(&listen, config).await {
                    Ok(simulator) => simulator,
                    Err(error) => {
                        eprintln!("wa simulator: {error}");
                        return ExitCode::from(2);
                    }
                };
                let base = simulator.base_url();
                // A closed stdout (a pipe whose reader left) must not stop the simulator.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "WhatsApp Cloud API simulator on {base}");
                let _ =
                    writeln!(out, "  POST {base}/v23.0/<phone_number_id>/messages  (Authorization: Bearer <token>)");
                let _ = writeln!(out, "  POST {base}/_sim/faults   GET {base}/_sim/messages");
                let _ = writeln!(out, "  set GRAPH_API_BASE={base} for the sender; Ctrl-C to stop");
                let _ = out.flush();
                drop(out);
                let _ = tokio::signal::ctrl_c().await;
                ExitCode::SUCCESS
            })
        }
    }
}
