//! `wa`: the WhatsApp pipeline's command line.
//!
//! - `wa simulator`: run the Cloud API simulator (the Graph API for local runs and tests).
//! - `wa sign FILE`: print the `X-Hub-Signature-256` header Meta would send for a payload file.
//! - `wa stats`: a business number's month and a user's window and consent, from the state table.

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
    /// A business number's month (statuses, billable messages) and a user's window and consent,
    /// read from the state table (AWS credentials and region from the environment).
    Stats {
        /// The state table.
        #[arg(long, env = "STATE_TABLE")]
        table: String,
        /// The business number (phone_number_id).
        #[arg(long, required_unless_present = "message")]
        phone: Option<String>,
        /// Show one message instead: its status, pricing and the send request behind it.
        #[arg(long, conflicts_with_all = ["phone", "user", "month"])]
        message: Option<String>,
        /// A user (BSUID or wa_id) to show.
        #[arg(long)]
        user: Option<String>,
        /// The month, YYYY-MM (default: this month, UTC).
        #[arg(long)]
        month: Option<String>,
        /// Prices per billable message to estimate the cost: CUR:category=price,... (e.g.
        /// INR:marketing=0.8631,utility=0.115,authentication=0.115, the example used when unset),
        /// from Meta's rates for your market.
        #[arg(long, env = "RATE_CARD")]
        rate_card: Option<String>,
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
        Command::Stats { table, phone, message, user, month, rate_card } => {
            let rate_card = match rate_card.as_deref().map(wa_core::conversation::RateCard::parse).transpose() {
                Ok(card) => card,
                Err(error) => {
                    eprintln!("wa stats: --rate-card: {error}");
                    return ExitCode::from(2);
                }
            };
            let now = i64::try_from(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            )
            .unwrap_or(0);
            let month = month.unwrap_or_else(|| wa_cli::this_month(now));
            if month.len() != 7
                || month.as_bytes()[4] != b'-'
                || !month.replace('-', "").bytes().all(|b| b.is_ascii_digit())
            {
                eprintln!("wa stats: --month must look like 2026-11, not {month:?}");
                return ExitCode::from(2);
            }
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                eprintln!("wa stats: cannot start a runtime");
                return ExitCode::FAILURE;
            };
            runtime.block_on(async move {
                let sdk = wa_infra::aws::load().await;
                let state = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
                let report = match (&message, &phone) {
                    (Some(wamid), _) => wa_cli::message(&state, wamid).await,
                    (None, Some(phone)) => {
                        wa_cli::stats(&state, phone, user.as_deref(), &month, now, rate_card.as_ref()).await
                    }
                    (None, None) => Err("--phone or --message is needed".to_owned()),
                };
                match report {
                    Ok(report) => {
                        print!("{report}");
                        ExitCode::SUCCESS
                    }
                    Err(error) => {
                        eprintln!("wa stats: cannot read the state table: {error}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
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
