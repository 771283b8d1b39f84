//! `wa`: the WhatsApp pipeline's command line.
//!
//! - `wa dev`: the whole pipeline in one process on loopback (`--demo`: a scenario end to end).
//! - `wa send`: put a SendRequest on the local stack's or a real outbound queue.
//! - `wa replay`: post signed webhook payloads (Meta's examples by default) to a URL.
//! - `wa dlq list|redrive`: inspect and redrive dead-letter queues (local or SQS).
//! - `wa doctor`: check a real Meta setup (token, webhook subscription, phone number).
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

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on loopback (webhook server, queues and state in SQLite, event
    /// processor, sender, Cloud API simulator) until Ctrl-C.
    Dev {
        /// The webhook server's address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The simulator's address.
        #[arg(long, default_value = "127.0.0.1:8090")]
        simulator_listen: String,
        /// Where queues and state are kept (survives restarts).
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
        /// Play a scenario end to end, check it, and exit (0 when every step went as expected).
        #[arg(long)]
        demo: bool,
        /// Messages per second per business number.
        #[arg(long, default_value_t = wa_cli::dev::DEFAULT_MESSAGES_PER_SECOND, value_parser = clap::value_parser!(u32).range(1..=1000))]
        messages_per_second: u32,
        /// Also print the functions' JSON logs and metrics (stderr and stdout).
        #[arg(long)]
        logs: bool,
        /// Serve the webhook and queue its events only (no event processor, no sender): to
        /// measure the webhook path alone, or to buffer events; a later `wa dev` processes them.
        #[arg(long, conflicts_with = "demo")]
        webhook_only: bool,
        /// Drop webhook events older than this many days as replays, as the ingest function does
        /// (it defaults to 8); 0, the local default, accepts any age (the demo and `wa replay`
        /// send Meta's examples, dated 2025). 1 to 7 are refused: within Meta's retries.
        #[arg(long, default_value_t = 0, value_parser = max_age_days)]
        max_event_age_days: u64,
        /// Meta's messaging limit to play (TIER_250, TIER_2K, …): the simulator refuses templates
        /// to new users beyond it (131048) and the sender defers them until the window slides.
        #[arg(long, value_parser = tier)]
        messaging_limit: Option<wa_core::limit::Tier>,
        /// Concurrent sender invocations, as `SenderMaxConcurrency` in the template (a number
        /// upgraded to 1,000 messages/s needs about 25).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=200))]
        sender_concurrency: u16,
        /// Commits reach the operating system without a flush to the disk each: nothing is lost
        /// if `wa dev` crashes, the last commits may be in a power cut; sends go several times
        /// faster (every state write of a send is a commit).
        #[arg(long)]
        no_flush: bool,
    },
    /// Put a SendRequest on the outbound queue: the local stack's, or a real one with --queue-url.
    Send {
        /// The recipient (wa_id / phone number with country code).
        #[arg(long, required_unless_present = "file")]
        to: Option<String>,
        /// A text message.
        #[arg(long, conflicts_with_all = ["template", "file"])]
        text: Option<String>,
        /// A template by name.
        #[arg(long, conflicts_with = "file")]
        template: Option<String>,
        /// The template's language code.
        #[arg(long, default_value = "en_US")]
        language: String,
        /// A whole SendRequest v1 JSON file instead.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// A document to send (PDF, Office, text; up to 100 MB): stored in the local blob store,
        /// or with --bucket in S3, and sent by the sender's upload.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["text", "template", "file", "image", "video", "audio"])]
        document: Option<std::path::PathBuf>,
        /// An image to send (JPEG or PNG, up to 5 MB).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["text", "template", "file", "video", "audio"])]
        image: Option<std::path::PathBuf>,
        /// A video to send (MP4 or 3GPP, up to 16 MB).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["text", "template", "file", "audio"])]
        video: Option<std::path::PathBuf>,
        /// An audio file to send (AAC, AMR, MP3, MP4, OGG/Opus; up to 16 MB).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["text", "template", "file"])]
        audio: Option<std::path::PathBuf>,
        /// The media's caption.
        #[arg(long)]
        caption: Option<String>,
        /// With --queue-url: the S3 bucket the file is put in (under outbound/) for the sender to read.
        #[arg(long, requires = "queue_url", env = "WA_MEDIA_BUCKET")]
        bucket: Option<String>,
        /// The business number.
        #[arg(long, env = "WA_PHONE_NUMBER_ID", default_value = wa_cli::dev::DEV_PHONE_NUMBER_ID)]
        phone_number_id: String,
        /// The idempotency key: give the same one to retry without sending twice (default: a new one).
        #[arg(long)]
        key: Option<String>,
        /// The pricing category the message is sent in (marketing, utility, authentication, service).
        #[arg(long)]
        category: Option<String>,
        /// A real outbound FIFO queue (AWS credentials and region from the environment).
        #[arg(long, env = "OUTBOUND_QUEUE_URL")]
        queue_url: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
    /// Post signed webhook payloads to a URL, as Meta would (every .json file of a directory).
    Replay {
        /// The webhook URL (e.g. http://127.0.0.1:8080/webhook).
        url: String,
        /// A payload file or a directory of them (default: Meta's 16 example webhooks).
        #[arg(long, default_value = "fixtures/meta/webhooks")]
        from: std::path::PathBuf,
        /// The app secret to sign with.
        #[arg(long, env = "WA_APP_SECRET", default_value = wa_cli::dev::DEV_APP_SECRET)]
        app_secret: String,
    },
    /// Check a real Meta setup: token validity and expiry, the app's webhook subscription, the
    /// WABA's subscribed apps, the business number's status and throughput.
    Doctor {
        /// Read app_id, app_secret and access_token from this Secrets Manager secret (AWSCURRENT);
        /// otherwise from WA_APP_ID, WA_APP_SECRET and WA_ACCESS_TOKEN.
        #[arg(long, env = "WHATSAPP_SECRET_ID")]
        secret_id: Option<String>,
        /// The WhatsApp Business Account id.
        #[arg(long, env = "WA_WABA_ID")]
        waba_id: String,
        /// The business number's id.
        #[arg(long, env = "WA_PHONE_NUMBER_ID")]
        phone_number_id: String,
        /// The Graph API host.
        #[arg(long, env = "GRAPH_API_BASE", default_value = wa_infra::graph::DEFAULT_BASE)]
        graph_url: String,
    },
    /// Dead-letter queues: list what is in one, or move it back to its source queue.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
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
        #[arg(long, default_value_t = wa_cli::dev::DEFAULT_MESSAGES_PER_SECOND, value_parser = clap::value_parser!(u32).range(1..=1000))]
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
    /// Business numbers held after an account-level error (368, 131042, 131031, ...): list them, or
    /// clear one once the cause is fixed. Reads the state table (AWS) or, without --table, the local
    /// stack.
    Hold {
        #[command(subcommand)]
        action: HoldAction,
    },
    /// Erase one person's data (found by phone number or BSUID, through every linked id): state
    /// records, media files and, on the local stack, queued messages. The report counts, never
    /// names, what it deleted.
    Erase {
        /// The person: a phone number or a BSUID.
        #[arg(long)]
        user: String,
        /// The business number (phone_number_id).
        #[arg(long, env = "WA_PHONE_NUMBER_ID", default_value = wa_cli::dev::DEV_PHONE_NUMBER_ID)]
        phone_number_id: String,
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// The state table (AWS credentials and region from the environment); without it, the
        /// local stack.
        #[arg(long, env = "STATE_TABLE")]
        table: Option<String>,
        /// With --table: the payload bucket whose media files are searched too.
        #[arg(long, env = "PAYLOAD_BUCKET", requires = "table")]
        bucket: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
    /// Message templates as code.
    Templates {
        #[command(subcommand)]
        action: TemplatesAction,
    },
    /// Bulk template sends with A/B variants, and their funnel.
    Campaign {
        #[command(subcommand)]
        action: CampaignAction,
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

/// Where Meta's template API is (default: `wa dev`'s simulator).
#[derive(clap::Args)]
struct TemplateApiArgs {
    /// The Graph API base: https://graph.facebook.com, or a simulator.
    #[arg(long, env = "GRAPH_API_BASE", default_value = "http://127.0.0.1:8090")]
    graph_url: String,
    /// The Graph API version.
    #[arg(long, env = "GRAPH_API_VERSION", default_value = wa_infra::graph::DEFAULT_VERSION)]
    graph_version: String,
    /// The WhatsApp Business Account whose templates these are.
    #[arg(long, env = "WA_WABA_ID", default_value = "102290129340398")]
    waba_id: String,
    /// A token allowed to manage its templates.
    #[arg(long, env = "WA_ACCESS_TOKEN", default_value = wa_cli::dev::DEV_ACCESS_TOKEN, hide_default_value = true)]
    token: String,
}

#[derive(Subcommand)]
enum TemplatesAction {
    /// Check template files (Meta's create payload, JSON or YAML; directories too) against Meta's
    /// published rules (errors) and house rules (warnings); exit 1 when any error is found.
    Lint {
        /// Template files or directories.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
    },
    /// Create or edit the templates of files (linted first; an unchanged template is not
    /// re-submitted); exit 1 when any was refused.
    Push {
        /// Template files or directories.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        api: TemplateApiArgs,
    },
    /// Write every template of the WABA to files (<name>.<language>.json), and with --record fill
    /// the template registry (the state table with --table, else the local stack).
    Pull {
        /// The directory.
        dir: std::path::PathBuf,
        /// Also record status, category and parameters in the template registry.
        #[arg(long)]
        record: bool,
        /// The state table to record into (AWS credentials and region from the environment).
        #[arg(long, env = "STATE_TABLE", requires = "record")]
        table: Option<String>,
        /// The local stack's data directory (when recording without --table).
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
        #[command(flatten)]
        api: TemplateApiArgs,
    },
    /// Every template with its status and category.
    List {
        #[command(flatten)]
        api: TemplateApiArgs,
    },
    /// The same as list.
    Status {
        #[command(flatten)]
        api: TemplateApiArgs,
    },
    /// Delete a template (every language, or one).
    Delete {
        /// The template's name.
        name: String,
        /// Only this language.
        #[arg(long)]
        language: Option<String>,
        #[command(flatten)]
        api: TemplateApiArgs,
    },
}

#[derive(Subcommand)]
enum CampaignAction {
    /// Queue one template request per audience row (re-running sends nobody twice).
    Send {
        /// The campaign id (A-Z a-z 0-9 _ - ., up to 64): it keys every request.
        #[arg(long)]
        id: String,
        /// The audience: CSV with a `to` column (phone number or BSUID), optionally `language`,
        /// and the template's body parameters (`1`, `2`, … positional; other names named).
        #[arg(long)]
        audience: std::path::PathBuf,
        /// A variant: name=template:share (repeat: --variant a=reminder_v1:50 --variant b=reminder_v2:50).
        #[arg(long = "variant", required = true)]
        variants: Vec<String>,
        /// The language of rows without one.
        #[arg(long, default_value = "en_US")]
        language: String,
        /// The category the requests declare; marketing suppresses opted-out recipients.
        #[arg(long)]
        category: Option<String>,
        /// The business number; repeat it to spread the recipients over several numbers (each
        /// recipient always gets the same one), whose send rates add up.
        #[arg(long = "phone-number-id", env = "WA_PHONE_NUMBER_ID", value_delimiter = ',', default_value = wa_cli::dev::DEV_PHONE_NUMBER_ID)]
        phone_number_ids: Vec<String>,
        /// A real outbound FIFO queue (AWS credentials and region from the environment); with it,
        /// --table is where opt-outs are read and the counters kept.
        #[arg(long, env = "OUTBOUND_QUEUE_URL", requires = "table")]
        queue_url: Option<String>,
        /// The state table; without it, the local stack.
        #[arg(long, env = "STATE_TABLE")]
        table: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Each variant's funnel: queued, sent, delivered, read, replied, failed by class, suppressed,
    /// billable messages by category.
    Report {
        /// The campaign id.
        id: String,
        /// How the report is written.
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// Write it (or, with --format table, also an SVG funnel picture) to this file.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// How long after a send an inbound message counts as a reply, in hours.
        #[arg(long, default_value_t = 24)]
        reply_hours: u64,
        /// The state table; without it, the local stack.
        #[arg(long, env = "STATE_TABLE")]
        table: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ReportFormat {
    /// A table for a person.
    Table,
    /// JSON.
    Json,
    /// An SVG picture: one funnel per variant.
    Svg,
}

#[derive(Subcommand)]
enum HoldAction {
    /// Every held number, why, and until when.
    List {
        /// The state table (AWS credentials and region from the environment); without it, the
        /// local stack.
        #[arg(long, env = "STATE_TABLE")]
        table: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
    /// Lift a number's hold now (its queued requests go out at their next delivery).
    Clear {
        /// The business number (phone_number_id).
        #[arg(long)]
        phone_number_id: String,
        /// The state table (AWS credentials and region from the environment); without it, the
        /// local stack.
        #[arg(long, env = "STATE_TABLE")]
        table: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// Show the messages of a dead-letter queue (kind, ids, age; no message text).
    List {
        /// Local: inbound, outbound.fifo, events or media. Ignored with --queue-url.
        #[arg(long, default_value = "inbound")]
        queue: String,
        /// A real DLQ URL.
        #[arg(long)]
        queue_url: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
    /// Move every message of a dead-letter queue back to its source queue.
    Redrive {
        /// Local: inbound, outbound.fifo, events or media. Ignored with --queue-url.
        #[arg(long, default_value = "inbound")]
        queue: String,
        /// A real DLQ URL (with --to-url).
        #[arg(long, requires = "to_url")]
        queue_url: Option<String>,
        /// The real source queue URL to move them to.
        #[arg(long)]
        to_url: Option<String>,
        /// The local stack's data directory.
        #[arg(long, default_value = ".wa-dev", env = "WA_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match wa_cli::runtime() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("wa: cannot start a runtime: {error}");
            None
        }
    }
}

/// `--max-event-age-days`: 0, or more than Meta's 7 days of retries.
/// A messaging-limit tier as Meta names it (`TIER_250`, `TIER_2K`, `TIER_UNLIMITED`) or a number.
fn tier(text: &str) -> Result<wa_core::limit::Tier, String> {
    wa_core::limit::parse_tier(&serde_json::Value::String(text.to_owned()))
        .ok_or_else(|| format!("{text:?} is not a tier: TIER_250, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED"))
}

fn max_age_days(text: &str) -> Result<u64, String> {
    let days: u64 = text.parse().map_err(|_| format!("expected a whole number of days, got {text:?}"))?;
    wa_core::replay::window_days(days).map(|_| days).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev {
            listen,
            simulator_listen,
            data_dir,
            demo,
            messages_per_second,
            logs,
            webhook_only,
            max_event_age_days,
            messaging_limit,
            sender_concurrency,
            no_flush,
        } => {
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
            let options = wa_cli::dev::DevOptions {
                listen,
                simulator_listen,
                data_dir,
                real_graph: match real_graph() {
                    Ok(real) => real,
                    Err(error) => {
                        eprintln!("wa dev: {error}");
                        return ExitCode::from(2);
                    }
                },
                messages_per_second,
                webhook_only,
                max_event_age_s: wa_core::replay::window_days(max_event_age_days).ok().flatten(),
                quiet_outbox: false,
                messaging_limit,
                sender_pollers: usize::from(sender_concurrency),
                flush: !no_flush,
            };
            if logs {
                wa_infra::telemetry::init_logs_to(std::io::stderr);
            } else {
                wa_infra::telemetry::silence_metrics();
            }
            runtime.block_on(wa_cli::run_dev(options, demo))
        }
        Command::Send {
            to,
            text,
            template,
            language,
            file,
            document,
            image,
            video,
            audio,
            caption,
            bucket,
            phone_number_id,
            key,
            category,
            queue_url,
            data_dir,
        } => {
            use wa_core::media::MediaKind;
            let media = [
                (MediaKind::Document, document),
                (MediaKind::Image, image),
                (MediaKind::Video, video),
                (MediaKind::Audio, audio),
            ]
            .into_iter()
            .find_map(|(kind, path)| path.map(|p| (kind, p)));
            let staged = match media {
                None => None,
                Some(_) if queue_url.is_some() && bucket.is_none() => {
                    eprintln!("wa send: a file sent through --queue-url needs --bucket (where the sender reads it)");
                    return ExitCode::from(2);
                }
                Some((kind, path)) => match wa_cli::media_file(kind, &path, bucket.as_deref().unwrap_or("local")) {
                    Ok(staged) => Some(staged),
                    Err(error) => {
                        eprintln!("wa send: {error}");
                        return ExitCode::from(2);
                    }
                },
            };
            let request = match wa_cli::send_request(wa_cli::SendArgs {
                media: staged.as_ref().map(|s| s.target.clone()),
                caption,
                to,
                text,
                template,
                language,
                file,
                phone_number_id,
                key,
                category,
            }) {
                Ok(request) => request,
                Err(error) => {
                    eprintln!("wa send: {error}");
                    return ExitCode::from(2);
                }
            };
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
            let queued = runtime.block_on(async {
                if let Some(staged) = &staged {
                    wa_cli::stage(staged, &data_dir).await?;
                }
                wa_cli::send(&request, queue_url.as_deref(), &data_dir).await
            });
            match queued {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("wa send: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay { url, from, app_secret } => {
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
            match runtime.block_on(wa_cli::replay(&url, &from, &app_secret)) {
                Ok((report, all_ok)) => {
                    print!("{report}");
                    if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                }
                Err(error) => {
                    eprintln!("wa replay: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Doctor { secret_id, waba_id, phone_number_id, graph_url } => {
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
            runtime.block_on(async move {
                let secrets = match doctor_secrets(secret_id.as_deref()).await {
                    Ok(secrets) => secrets,
                    Err(error) => {
                        eprintln!("wa doctor: {error}");
                        return ExitCode::from(2);
                    }
                };
                let args = wa_cli::doctor::DoctorArgs { secrets, waba_id, phone_number_id, graph_base: graph_url };
                match wa_cli::doctor::doctor(&args, wa_infra::telemetry::now_millis() / 1000).await {
                    Ok((report, all_ok)) => {
                        print!("{report}");
                        if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                    }
                    Err(error) => {
                        eprintln!("wa doctor: {error}");
                        ExitCode::from(2)
                    }
                }
            })
        }
        Command::Dlq { action } => {
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
            let result = match action {
                DlqAction::List { queue, queue_url, data_dir } => {
                    runtime.block_on(wa_cli::dlq_list(&queue, queue_url.as_deref(), &data_dir))
                }
                DlqAction::Redrive { queue, queue_url, to_url, data_dir } => runtime.block_on(wa_cli::dlq_redrive(
                    &queue,
                    queue_url.as_deref().zip(to_url.as_deref()),
                    &data_dir,
                )),
            };
            match result {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("wa dlq: {error}");
                    ExitCode::FAILURE
                }
            }
        }
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
            let env = wa_infra::config::process_env();
            let limits = match (env.portfolios(), env.messaging_limit()) {
                (Ok(portfolios), Ok(configured)) => wa_cli::LimitView { portfolios, configured },
                (Err(error), _) | (_, Err(error)) => {
                    eprintln!("wa stats: {error}");
                    return ExitCode::from(2);
                }
            };
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
                        wa_cli::stats(&state, phone, user.as_deref(), &month, now, rate_card.as_ref(), &limits).await
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
        Command::Templates { action: TemplatesAction::Lint { paths } } => match wa_cli::templates::lint_paths(&paths) {
            Ok((report, failed)) => {
                print!("{report}");
                if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
            }
            Err(error) => {
                eprintln!("wa templates lint: {error}");
                ExitCode::from(2)
            }
        },
        Command::Templates { action } => {
            let api = |a: TemplateApiArgs| wa_cli::templates::TemplateApi {
                base: a.graph_url,
                version: a.graph_version,
                waba_id: a.waba_id,
                token: a.token,
            };
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
            let result = runtime.block_on(async move {
                match action {
                    TemplatesAction::Push { paths, dry_run, api: a } => api(a).push(&paths, dry_run).await,
                    TemplatesAction::Pull { dir, record, table, data_dir, api: a } => {
                        let api = api(a);
                        let mut report = api.pull(&dir).await?;
                        if record {
                            report += &match table {
                                Some(table) => {
                                    let sdk = wa_infra::aws::load().await;
                                    api.record(&wa_infra::dynamo::StateTable::new(
                                        aws_sdk_dynamodb::Client::new(&sdk),
                                        table,
                                    ))
                                    .await?
                                }
                                None => {
                                    api.record(&wa_infra_local::LocalState::new(&wa_cli::dev::open(&data_dir)?)).await?
                                }
                            };
                        }
                        Ok((report, false))
                    }
                    TemplatesAction::List { api: a } | TemplatesAction::Status { api: a } => {
                        api(a).status().await.map(|r| (r, false))
                    }
                    TemplatesAction::Delete { name, language, api: a } => {
                        api(a).delete(&name, language.as_deref()).await.map(|r| (r, false))
                    }
                    TemplatesAction::Lint { .. } => Ok((String::new(), false)),
                }
            });
            match result {
                Ok((report, failed)) => {
                    print!("{report}");
                    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
                }
                Err(error) => {
                    eprintln!("wa templates: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Erase { user, phone_number_id, dry_run, table, bucket, data_dir } => {
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
            let result = runtime.block_on(async move {
                match table {
                    Some(table) => {
                        let sdk = wa_infra::aws::load().await;
                        let state = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
                        let media = bucket.map(|b| wa_infra::s3::S3Blobs::new(wa_infra::aws::s3_client(&sdk), b));
                        wa_cli::erase::erase_aws(&state, media.as_ref(), &phone_number_id, &user, dry_run).await
                    }
                    None => {
                        let db = wa_cli::dev::open(&data_dir)?;
                        wa_cli::erase::erase_local(&db, &phone_number_id, &user, dry_run).await
                    }
                }
            });
            match result {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("wa erase: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Campaign { action } => {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                eprintln!("wa campaign: cannot start a runtime");
                return ExitCode::FAILURE;
            };
            match runtime.block_on(campaign(action)) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("wa campaign: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Hold { action } => {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                eprintln!("wa hold: cannot start a runtime");
                return ExitCode::FAILURE;
            };
            let now = u64::try_from(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
            )
            .unwrap_or(0);
            let result = runtime.block_on(async move {
                let (table, data_dir) = match &action {
                    HoldAction::List { table, data_dir } | HoldAction::Clear { table, data_dir, .. } => {
                        (table.clone(), data_dir.clone())
                    }
                };
                match table {
                    Some(table) => {
                        let sdk = wa_infra::aws::load().await;
                        let state = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
                        match &action {
                            HoldAction::List { .. } => {
                                state.holds().await.map(|h| wa_cli::hold::describe(&h, now)).map_err(|e| e.to_string())
                            }
                            HoldAction::Clear { phone_number_id, .. } => {
                                wa_cli::hold::clear(&state, phone_number_id).await
                            }
                        }
                    }
                    None => {
                        let db = wa_cli::dev::open(&data_dir)?;
                        let state = wa_infra_local::LocalState::new(&db);
                        match &action {
                            HoldAction::List { .. } => {
                                state.holds().map(|h| wa_cli::hold::describe(&h, now)).map_err(|e| e.to_string())
                            }
                            HoldAction::Clear { phone_number_id, .. } => {
                                wa_cli::hold::clear(&state, phone_number_id).await
                            }
                        }
                    }
                }
            });
            match result {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("wa hold: {error}");
                    ExitCode::FAILURE
                }
            }
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

/// The real Graph API when `WA_ACCESS_TOKEN` is set (then `WA_APP_SECRET` and `WA_VERIFY_TOKEN`
/// are needed too).
fn real_graph() -> Result<Option<wa_cli::dev::RealGraph>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(access_token) = var("WA_ACCESS_TOKEN") else { return Ok(None) };
    let need = |name: &str, what: &str| var(name).ok_or(format!("WA_ACCESS_TOKEN is set, so {name} is needed: {what}"));
    Ok(Some(wa_cli::dev::RealGraph {
        base: var("GRAPH_API_BASE").unwrap_or_else(|| wa_infra::graph::DEFAULT_BASE.into()),
        access_token,
        app_secret: need("WA_APP_SECRET", "the app secret that signs Meta's webhooks")?,
        verify_token: need("WA_VERIFY_TOKEN", "the verify token set in Meta's dashboard")?,
    }))
}

/// The credentials `wa doctor` checks: a secret, or the WA_* variables.
async fn doctor_secrets(secret_id: Option<&str>) -> Result<wa_core::secrets::AppSecrets, String> {
    use wa_core::ports::SecretSource;
    if let Some(id) = secret_id {
        let sdk = wa_infra::aws::load().await;
        let source = wa_infra::secrets::secrets_manager(&sdk, id.to_owned(), 60);
        return match source.get(wa_core::secrets::SecretStage::Current).await {
            Ok(Some(secrets)) => Ok((*secrets).clone()),
            Ok(None) => Err(format!("secret {id} has no AWSCURRENT value")),
            Err(error) => Err(format!("cannot read secret {id}: {error}")),
        };
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let need = |name: &str| {
        var(name).ok_or(format!("set --secret-id, or {name} (with WA_APP_ID, WA_APP_SECRET, WA_ACCESS_TOKEN)"))
    };
    Ok(wa_core::secrets::AppSecrets {
        app_id: need("WA_APP_ID")?,
        app_secret: need("WA_APP_SECRET")?,
        access_token: need("WA_ACCESS_TOKEN")?,
        verify_token: String::new(),
        phone_number_tokens: std::collections::BTreeMap::new(),
    })
}

async fn campaign(action: CampaignAction) -> Result<String, String> {
    use wa_cli::campaign::{self, Outbound, SendOptions};
    match action {
        CampaignAction::Send {
            id,
            audience,
            variants,
            language,
            category,
            phone_number_ids,
            queue_url,
            table,
            data_dir,
            quiet,
        } => {
            let variants = variants
                .iter()
                .map(|v| wa_core::campaign::Variant::parse(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let category = category
                .map(|c| serde_json::from_value(serde_json::Value::String(c.to_ascii_lowercase())))
                .transpose()
                .map_err(|_| "--category: marketing, utility, authentication or service".to_owned())?;
            let options = SendOptions {
                campaign: id,
                audience,
                variants,
                phone_number_ids,
                language,
                category,
                progress: !quiet,
            };
            let summary = match (queue_url, table) {
                (Some(url), Some(table)) => {
                    let sdk = wa_infra::aws::load().await;
                    let state = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
                    let outbound = Outbound::Sqs { client: aws_sdk_sqs::Client::new(&sdk), url };
                    campaign::send(&options, &state, &outbound).await?
                }
                (None, Some(_)) => return Err("--table without --queue-url: name the outbound queue too".into()),
                _ => {
                    let db = wa_cli::dev::open(&data_dir)?;
                    let outbound = Outbound::Local(wa_cli::dev::Queues::of(&db).outbound);
                    campaign::send(&options, &wa_infra_local::LocalState::new(&db), &outbound).await?
                }
            };
            let variants: Vec<String> = summary.by_variant.iter().map(|(v, n)| format!("{v} {n}")).collect();
            Ok(format!(
                "campaign {}: {} recipients ({}), {} queued now, {} already queued, {} suppressed (opted out), {:.1} s, {:.0} requests/s",
                options.campaign,
                summary.total,
                variants.join(", "),
                summary.queued,
                summary.repeated,
                summary.suppressed,
                summary.seconds,
                summary.rate()
            ))
        }
        CampaignAction::Report { id, format, out, reply_hours, table, data_dir } => {
            let window = std::time::Duration::from_secs(reply_hours.saturating_mul(3600));
            let funnels = match table {
                Some(table) => {
                    let sdk = wa_infra::aws::load().await;
                    let state = wa_infra::dynamo::StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
                    let lookup_state = state.clone();
                    let lookup: campaign::MessageLookup<'_> = Box::new(move |wamid: String| {
                        let state = lookup_state.clone();
                        Box::pin(async move {
                            let record = state.message(&wamid).await.map_err(|e| e.to_string())?;
                            Ok(record.map_or((None, None), |r| (r.status, r.pricing_category)))
                        })
                    });
                    campaign::report(&state, &lookup, &id, window).await?
                }
                None => {
                    let db = wa_cli::dev::open(&data_dir)?;
                    let state = wa_infra_local::LocalState::new(&db);
                    campaign::report(&state, &campaign::local_lookup(&state), &id, window).await?
                }
            };
            let text = match format {
                ReportFormat::Table => campaign::table(&id, &funnels),
                ReportFormat::Json => {
                    serde_json::to_string_pretty(&serde_json::json!({"campaign": id, "variants": funnels}))
                        .map_err(|e| e.to_string())?
                }
                ReportFormat::Svg => campaign::svg(&id, &funnels)?,
            };
            match out {
                Some(path) => {
                    let written = match format {
                        ReportFormat::Table => campaign::svg(&id, &funnels)?,
                        _ => text.clone(),
                    };
                    std::fs::write(&path, written).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    Ok(match format {
                        ReportFormat::Table => format!("{text}funnel picture: {}", path.display()),
                        _ => format!("written to {}", path.display()),
                    })
                }
                None => Ok(text),
            }
        }
    }
}
