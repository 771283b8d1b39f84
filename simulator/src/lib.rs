//! A WhatsApp Cloud API simulator on loopback.
//!
//! `POST /{version}/{phone_number_id}/messages` is checked the way Meta checks it, by rules of its
//! own ([`checks`], not the pipeline's validator): a valid bearer token, `messaging_product`, the
//! required fields per type and the documented limits; 400 or 401 with Meta-shaped error JSON and
//! the right code when not; enforces the per-number throughput
//! (130429) and the pair rate (131056), returns wamids, and then posts status webhooks
//! (sent → delivered → read, with pricing) signed with the app secret to the configured webhook
//! URL, as Meta does. Latency and faults (any error code, HTTP 5xx, timeouts — optionally after the
//! message was accepted, the ambiguous case — and redirects) are configurable, in process or over
//! HTTP: `POST /_sim/faults`, `GET /_sim/messages`. The token and subscription endpoints a secret
//! rotation uses are in [`admin`].
//!
//! It speaks 2026 Meta ([`users`]): every user has a business-scoped user id (BSUID) beside the
//! phone, or instead of it for username users; sends may address `to` (phone) or `recipient`
//! (BSUID; `to` wins when both are given) and are answered with `contacts[]` (`input`, `wa_id`,
//! `user_id`); sent, delivered and read statuses carry `contacts`, failed ones do not; an
//! authentication template to a BSUID is refused with 131062; `POST /_sim/identity_change` posts
//! `user_changed_number` / `user_changed_user_id`; unknown paths get Meta's JSON error.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod admin;
pub mod checks;
pub mod media;
pub mod templates;
pub mod users;

pub use admin::{AdminCall, Subscription, TokenInfo};
pub use users::{IdentityChange, bsuid_for, parent_bsuid_for};

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The bearer token it accepts (others get 401, code 190), besides the tokens it mints.
    pub access_token: String,
    /// When `access_token` expires (Unix seconds; 0: never), as `debug_token` reports it.
    pub access_token_expires_at: u64,
    /// The Meta app id (OAuth exchange, app access token `app_id|app_secret`, subscriptions).
    pub app_id: String,
    /// The app secret that signs its webhooks.
    pub app_secret: String,
    /// Where it posts status webhooks; none: no webhooks.
    pub webhook_url: Option<String>,
    /// The WABA id in its webhooks.
    pub waba_id: String,
    /// Messages per second per business number (Meta: 80 by default, up to 1000).
    pub messages_per_second: u32,
    /// Pair rate: burst of messages to one recipient.
    pub pair_burst: u32,
    /// Pair rate: one more message per this interval.
    pub pair_interval: Duration,
    /// Added to every send.
    pub latency: Duration,
    /// Between two status webhooks of one message.
    pub status_delay: Duration,
    /// The pricing category of template messages in status webhooks.
    pub template_category: String,
    /// The business number's `status` (`CONNECTED`, `PENDING`, `FLAGGED`, ...).
    pub phone_status: String,
    /// Categories of named templates (others are `template_category`): `authentication` ones cannot
    /// go to a BSUID (131062).
    pub template_categories: HashMap<String, String>,
    /// Webhooks also carry parent BSUIDs (Meta-enabled linked portfolios).
    pub parent_ids: bool,
    /// How long the simulator's template review takes (PENDING → APPROVED or REJECTED).
    pub template_review_delay: Duration,
    /// Unique users the business may reach with templates outside their service window in a
    /// rolling 24 hours (Meta's messaging limit, per portfolio: the simulator is one); beyond it a
    /// template to a new user is refused with 131048. `None`: unlimited.
    pub messaging_limit: Option<u64>,
    /// Users whose phone number ends so are username users: their webhooks carry the BSUID only
    /// (`Some("00")` by default: about one user in a hundred, as some are in 2026; `None`: none).
    pub username_phone_suffix: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            access_token: "sim-access-token".into(),
            access_token_expires_at: 0,
            app_id: "1234567890".into(),
            app_secret: "sim-app-secret".into(),
            webhook_url: None,
            waba_id: "102290129340398".into(),
            messages_per_second: 80,
            pair_burst: 45,
            pair_interval: Duration::from_secs(6),
            latency: Duration::ZERO,
            status_delay: Duration::from_millis(20),
            template_category: "utility".into(),
            phone_status: "CONNECTED".into(),
            template_categories: HashMap::new(),
            parent_ids: false,
            username_phone_suffix: Some("00".into()),
            template_review_delay: Duration::from_millis(200),
            messaging_limit: None,
        }
    }
}

/// A fault to inject into the next matching sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with Meta's error `code` and this HTTP status.
    Error {
        /// Meta's code.
        code: i64,
        /// HTTP status (400 for most).
        #[serde(default = "default_error_status")]
        http_status: u16,
    },
    /// Answer with a bare HTTP status (a 5xx without an error object). With `accepted`, the
    /// message is accepted first (the ambiguous case).
    HttpStatus {
        /// The status.
        status: u16,
        /// Accept the message before failing the response.
        #[serde(default)]
        accepted: bool,
    },
    /// Hold the response for `millis` (past the client's timeout). With `accepted`, the message
    /// is accepted first.
    Delay {
        /// How long.
        millis: u64,
        /// Accept the message before delaying the response.
        #[serde(default)]
        accepted: bool,
    },
    /// A download (`endpoint: "media_download"`) delivers the file with its first byte flipped.
    Corrupt,
    /// A download URL (`endpoint: "media_webhook"` or `"media_info"`) handed out already expired.
    ExpiredUrl,
    /// Accept the message, then report it `failed` with Meta's error `code` in a status webhook
    /// (after `sent` unless `code` is one Meta reports at once), as for an undeliverable message.
    FailedStatus {
        /// Meta's code in the status's `errors[]` (131026, 131049, 131047, ...).
        code: i64,
    },
    /// Answer with a redirect to `location` (nothing accepted): what a Graph base that is not the
    /// API's own address does (`http://` for `https://`, a moved proxy).
    Redirect {
        /// A 3xx status.
        #[serde(default = "default_redirect_status")]
        status: u16,
        /// The `Location` header.
        location: String,
    },
}

fn default_redirect_status() -> u16 {
    307
}

/// A redirect answer (no body).
pub(crate) fn redirect(status: u16, location: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
    match axum::http::HeaderValue::from_str(location) {
        Ok(location) => (status, [(axum::http::header::LOCATION, location)]).into_response(),
        Err(_) => status.into_response(),
    }
}

fn default_error_status() -> u16 {
    400
}

/// A fault with its scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What to do.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many sends it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Only sends to this recipient, when set.
    #[serde(default)]
    pub to: Option<String>,
    /// The endpoint it applies to: `messages` (when unset), `oauth`, `debug_token` or
    /// `subscriptions`.
    #[serde(default)]
    pub endpoint: Option<String>,
}

fn one() -> u32 {
    1
}

/// A request the simulator accepted (read receipts have an empty wamid).
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The wamid it returned.
    pub wamid: String,
    /// The business number.
    pub phone_number_id: String,
    /// The request body as received.
    pub body: Value,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
}

/// One request as seen, with the answer.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// The business number.
    pub phone_number_id: String,
    /// HTTP status answered.
    pub status: u16,
    /// Meta error code answered, if any.
    pub code: Option<i64>,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
}

#[derive(Default)]
struct Counters {
    accepted: Vec<Accepted>,
    seen: Vec<Seen>,
    per_number: HashMap<String, VecDeque<Instant>>,
    pair: HashMap<(String, String), (f64, Instant)>,
    faults: Vec<Fault>,
    webhooks_delivered: u64,
    tokens: HashMap<String, TokenInfo>,
    subscriptions: Vec<Subscription>,
    subscribed_apps: Vec<String>,
    admin_calls: Vec<AdminCall>,
    /// Users reached with templates (by BSUID), for the messaging limit.
    reached: HashMap<String, Instant>,
    /// When users last wrote (by BSUID): their service window.
    inbound: HashMap<String, Instant>,
    /// Templates refused for the messaging limit.
    limit_refusals: u64,
}

pub(crate) struct Shared {
    config: Mutex<SimConfig>,
    counters: Mutex<Counters>,
    users: Mutex<users::Users>,
    media: Mutex<media::MediaFiles>,
    templates: Mutex<HashMap<String, templates::Template>>,
    started: Instant,
    /// Distinguishes this run's wamids from an earlier run's (a restarted local stack keeps its
    /// state, and wamids are unique at Meta).
    instance: u64,
    next_id: AtomicU64,
    http: reqwest::Client,
}

/// A running simulator. It serves on a thread and runtime of its own, like a remote service: a
/// busy test or benchmark runtime does not distort what it observes. Dropping it stops it.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
#[error("simulator cannot listen on {addr}: {source}")]
pub struct StartError {
    addr: String,
    source: std::io::Error,
}

impl Simulator {
    /// Starts on `addr` (use `127.0.0.1:0` for a free port).
    pub async fn start(addr: &str, config: SimConfig) -> Result<Self, StartError> {
        let error = |source| StartError { addr: addr.to_owned(), source };
        let listener = std::net::TcpListener::bind(addr).map_err(error)?;
        listener.set_nonblocking(true).map_err(error)?;
        let local = listener.local_addr().map_err(error)?;
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            counters: Mutex::new(Counters::default()),
            users: Mutex::new(users::Users::default()),
            media: Mutex::new(media::MediaFiles::default()),
            templates: Mutex::new(HashMap::new()),
            started: Instant::now(),
            instance: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 1_000_000_000,
            next_id: AtomicU64::new(1),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default(),
        });
        let app = axum::Router::new()
            .route("/{version}/{phone_number_id}/messages", post(send_message))
            .route("/{version}/oauth/access_token", get(admin::exchange))
            .route("/{version}/debug_token", get(admin::debug_token))
            .route("/{version}/{app_id}/subscriptions", post(admin::subscribe).get(admin::list_subscriptions))
            .route("/{version}/{waba_id}/subscribed_apps", get(admin::subscribed_apps).post(admin::subscribed_apps))
            .route("/{version}/{phone_number_id}/media", post(media::upload))
            .route("/{version}/{id}", get(object).delete(media::delete).post(edit_object))
            .route(
                "/{version}/{waba_id}/message_templates",
                post(templates::create).get(templates::list).delete(templates::delete),
            )
            .route("/_sim/templates/{name}/{language}", post(templates::set_status))
            .route("/_sim/media/{id}", get(media::download))
            .route("/_sim/inbound_media", post(media::inbound_route))
            .route("/_sim/faults", post(add_fault))
            .route("/_sim/inbound", post(user_message))
            .route("/_sim/messages", get(list_messages))
            .route("/_sim/identity_change", post(identity_change_route))
            .fallback(unknown_path)
            .method_not_allowed_fallback(unknown_path)
            // Uploads reach 100 MB (documents); Meta's own limit is checked per kind.
            .layer(axum::extract::DefaultBodyLimit::max(110 * 1024 * 1024))
            .with_state(shared.clone());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(error)?;
        std::thread::Builder::new()
            .name("wa-simulator".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .map_err(error)?;
        Ok(Self { addr: local, shared, shutdown: Some(shutdown) })
    }

    /// `http://127.0.0.1:<port>`: use as `GRAPH_API_BASE`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.counters).faults.push(fault);
    }

    /// Every message accepted so far, in order.
    #[must_use]
    pub fn accepted(&self) -> Vec<Accepted> {
        lock(&self.shared.counters).accepted.clone()
    }

    /// How many messages were accepted so far ([`accepted`](Self::accepted) copies them all,
    /// holding the lock the send handler needs: too slow to poll while sends are timed).
    #[must_use]
    pub fn accepted_count(&self) -> usize {
        lock(&self.shared.counters).accepted.len()
    }

    /// Every send request seen so far, in order, with its answer.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.counters).seen.clone()
    }

    /// Status webhooks the webhook URL acknowledged with 200.
    #[must_use]
    pub fn webhooks_delivered(&self) -> u64 {
        lock(&self.shared.counters).webhooks_delivered
    }

    /// Registers or changes a token (expiry, validity, scopes), e.g. to make it near expiry.
    pub fn set_token(&self, token: &str, info: TokenInfo) {
        lock(&self.shared.counters).tokens.insert(token.to_owned(), info);
    }

    /// What the simulator knows of a token.
    #[must_use]
    pub fn token(&self, token: &str) -> Option<TokenInfo> {
        admin::token_info(&self.shared, token)
    }

    /// The webhook subscriptions set through `POST /{app_id}/subscriptions`.
    #[must_use]
    pub fn subscriptions(&self) -> Vec<Subscription> {
        lock(&self.shared.counters).subscriptions.clone()
    }

    /// The token and subscription calls answered so far.
    #[must_use]
    pub fn admin_calls(&self) -> Vec<AdminCall> {
        lock(&self.shared.counters).admin_calls.clone()
    }

    /// A user writes `text` to the business number: the simulator posts the signed `messages`
    /// webhook Meta would send to the webhook URL. Returns the inbound wamid once the webhook was
    /// acknowledged with 200.
    pub async fn user_writes(
        &self,
        phone_number_id: &str,
        from: &str,
        name: &str,
        text: &str,
    ) -> Result<String, String> {
        let message = UserMessage {
            phone_number_id: phone_number_id.to_owned(),
            from: from.to_owned(),
            name: name.to_owned(),
            text: text.to_owned(),
            withhold_phone: false,
        };
        deliver_user_message(&self.shared, &message).await
    }

    /// A user sends a file: the simulator keeps its bytes and posts the webhook Meta would send
    /// (`id`, base64 `sha256`, `url`).
    pub async fn user_sends_media(&self, media: &media::InboundMedia) -> Result<media::SentMedia, String> {
        media::deliver(&self.shared, &self.base_url(), media).await
    }

    /// Stores a file as a user's media for `phone_number_id` without posting a webhook; returns its
    /// media id, its base64 SHA-256 and a download URL valid 5 minutes (benchmarks build the event).
    #[must_use]
    pub fn put_media(&self, phone_number_id: &str, bytes: Vec<u8>, mime_type: &str) -> (String, String, String) {
        let (id, sha256) = media::store(&self.shared, phone_number_id, bytes, mime_type);
        let url = media::download_url(&self.shared, &self.base_url(), &id, "media_webhook");
        (id, sha256, url)
    }

    /// (uploads, downloads) of the media API so far.
    #[must_use]
    pub fn media_counts(&self) -> (u64, u64) {
        media::counts(&self.shared)
    }

    /// Makes `phone` a username user: webhooks name them by BSUID only.
    pub fn withhold_phone(&self, phone: &str) {
        lock(&self.shared.users).username_users.insert(phone.trim_start_matches('+').to_owned());
    }

    /// The BSUID the simulator's users have for `phone` (what its webhooks carry).
    #[must_use]
    pub fn bsuid_of(&self, phone: &str) -> String {
        let waba = lock(&self.shared.config).waba_id.clone();
        lock(&self.shared.users).bsuid(&waba, phone.trim_start_matches('+'))
    }

    /// A user changes number (`new_phone`) or only gets a new BSUID: posts the `system` message
    /// Meta sends. Returns its wamid once the webhook was acknowledged.
    pub async fn change_identity(&self, change: &IdentityChange) -> Result<String, String> {
        deliver_identity_change(&self.shared, change).await
    }

    /// Users refused a template for the messaging limit (131048) so far.
    #[must_use]
    pub fn limit_refusals(&self) -> u64 {
        lock(&self.shared.counters).limit_refusals
    }

    /// Meta announces a number's quality event (`ONBOARDING`, `THROUGHPUT_UPGRADE`) and the
    /// portfolio's messaging limit (`TIER_250`, …): posts the signed `phone_number_quality_update`
    /// webhook, which names the number by its display number. The simulator applies what it
    /// announces: the tier becomes its messaging limit, an upgrade its rate (1,000/s).
    pub async fn announce_quality(&self, phone_number_id: &str, event: &str, tier: &str) -> Result<(), String> {
        let config = {
            let mut config = lock(&self.shared.config);
            // Meta's tier names (its own reading, not the pipeline's): TIER_250, TIER_2K, …
            let rest = tier.strip_prefix("TIER_").unwrap_or(tier);
            config.messaging_limit = match rest {
                "UNLIMITED" => None,
                _ => match rest.strip_suffix('K') {
                    Some(k) => k.parse::<u64>().ok().map(|k| k * 1000),
                    None => rest.parse::<u64>().ok(),
                }
                .or(config.messaging_limit),
            };
            if event == "THROUGHPUT_UPGRADE" {
                config.messages_per_second = 1000;
            }
            config.clone()
        };
        let url = config.webhook_url.clone().ok_or("the simulator has no webhook URL to post to")?;
        let payload = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": config.waba_id, "time": admin::now_s(), "changes": [{"field": "phone_number_quality_update",
                "value": {"display_phone_number": display_number(phone_number_id), "event": event,
                          "current_limit": tier, "max_daily_conversations_per_business": tier}}]}],
        });
        if post_webhook(&self.shared, &config, &url, &payload).await {
            Ok(())
        } else {
            Err("the webhook did not answer 200".into())
        }
    }

    /// Changes the configuration (token, webhook URL, limits, latency) while running.
    pub fn configure(&self, change: impl FnOnce(&mut SimConfig)) {
        change(&mut lock(&self.shared.config));
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Meta's error JSON.
#[must_use]
pub fn meta_error(code: i64, message: &str, details: Option<&str>, trace: u64) -> Value {
    let mut error = json!({
        "message": format!("(#{code}) {message}"),
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": format!("Sim{trace:08X}"),
    });
    if let Some(details) = details {
        error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
    }
    json!({ "error": error })
}

fn error_title(code: i64) -> &'static str {
    match code {
        190 => "Error validating access token: Session has expired",
        100 => "Invalid parameter",
        130_429 => "Rate limit hit",
        131_056 => "(Business Account, Consumer Account) pair rate limit hit",
        131_047 => "Re-engagement message",
        131_026 => "Message undeliverable",
        131_008 => "Required parameter is missing",
        131_009 => "Parameter value is not valid",
        131_000 => "Something went wrong",
        368 => "Temporarily blocked for policies violations",
        _ => "Simulated error",
    }
}

pub(crate) fn respond(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response()
}

async fn send_message(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let config = lock(&shared.config).clone();
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let answer = |status: u16, code: Option<i64>, body: Value| {
        lock(&shared.counters).seen.push(Seen {
            phone_number_id: phone_number_id.clone(),
            status,
            code,
            at_ms: elapsed_ms(shared.started),
        });
        respond(status, body)
    };
    let fail = |code: i64, status: u16, details: Option<&str>| {
        answer(status, Some(code), meta_error(code, error_title(code), details, trace))
    };

    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !token.and_then(|t| admin::token_info(&shared, t)).is_some_and(|info| info.usable(admin::now_s())) {
        return fail(190, 401, None);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return fail(100, 400, Some("The request body is not a JSON object"));
    };
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return fail(100, 400, Some("messaging_product must be \"whatsapp\""));
    }
    // Meta's rules, as the simulator reads them (not the pipeline's validator).
    let kind = match checks::check(&body) {
        Ok(kind) => kind,
        Err(refusal) => return fail(refusal.code, 400, Some(&refusal.details)),
    };
    if kind == checks::Kind::ReadReceipt {
        lock(&shared.counters).accepted.push(Accepted {
            wamid: String::new(),
            phone_number_id: phone_number_id.clone(),
            body: Value::Object(body),
            at_ms: elapsed_ms(shared.started),
        });
        return answer(200, None, json!({"success": true}));
    }
    let to = body.get("to").or_else(|| body.get("recipient")).and_then(Value::as_str).unwrap_or_default().to_owned();
    let callback_data = body.get("biz_opaque_callback_data").and_then(Value::as_str).map(str::to_owned);
    // `to` (a phone) wins over `recipient` (a BSUID) when both are given.
    let by_phone = body.get("to").and_then(Value::as_str).map(|t| t.trim_start_matches('+').to_owned());
    let by_bsuid = body.get("recipient").and_then(Value::as_str).filter(|_| by_phone.is_none()).map(str::to_owned);
    let (phone, bsuid) = {
        let mut users = lock(&shared.users);
        match (&by_phone, by_bsuid.as_deref()) {
            (Some(phone), _) => (Some(phone.clone()), users.bsuid(&config.waba_id, phone)),
            (None, Some(bsuid)) => {
                if !users::looks_like_bsuid(bsuid) {
                    drop(users);
                    return fail(100, 400, Some("recipient is not a business-scoped user id"));
                }
                (users.phone_of(bsuid).map(str::to_owned), bsuid.to_owned())
            }
            (None, None) => (None, String::new()),
        }
    };
    let template_name = body.get("template").and_then(|t| t.get("name")).and_then(Value::as_str).map(str::to_owned);
    let template_category = template_name
        .and_then(|name| config.template_categories.get(&name).cloned())
        .unwrap_or_else(|| config.template_category.clone());
    let is_template = body.get("type").and_then(Value::as_str) == Some("template");
    if is_template && let Err(code) = templates::check_send(&shared, &body) {
        return fail(code, 400, Some("the template cannot be sent"));
    }
    if is_template && template_category == "authentication" && by_phone.is_none() && by_bsuid.is_some() {
        return fail(131_062, 400, Some("Authentication templates cannot be sent to a business-scoped user id"));
    }

    // Faults first (they model Meta's own failures), then the limits.
    let fault = take_fault_for(&shared, "messages", &to);
    let mut accept_then: Option<FaultKind> = None;
    match fault {
        Some(FaultKind::Error { code, http_status }) => {
            return fail(code, http_status, Some("injected by the simulator"));
        }
        Some(kind @ (FaultKind::HttpStatus { accepted: true, .. } | FaultKind::Delay { accepted: true, .. })) => {
            accept_then = Some(kind);
        }
        Some(FaultKind::HttpStatus { status, accepted: false }) => {
            return answer(status, None, json!({"error": {"message": "Service temporarily unavailable"}}));
        }
        Some(FaultKind::Delay { millis, accepted: false }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            return fail(131_000, 500, Some("delayed by the simulator"));
        }
        Some(FaultKind::Redirect { status, location }) => {
            answer(status, None, Value::Null);
            return redirect(status, &location);
        }
        Some(FaultKind::FailedStatus { code }) => accept_then = Some(FaultKind::FailedStatus { code }),
        Some(FaultKind::Corrupt | FaultKind::ExpiredUrl) | None => {}
    }
    if let Err(code) = check_limits(&shared, &config, &phone_number_id, &to) {
        return fail(code, 400, None);
    }
    if is_template && !check_messaging_limit(&shared, &config, &bsuid) {
        return fail(131_048, 400, Some("Message failed to send because the messaging limit was reached"));
    }

    let wamid = format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("SIM:{}:{phone_number_id}:{trace:012}", shared.instance))
    );
    let body = Value::Object(body);
    {
        let mut counters = lock(&shared.counters);
        counters.accepted.push(Accepted {
            wamid: wamid.clone(),
            phone_number_id: phone_number_id.clone(),
            body: body.clone(),
            at_ms: elapsed_ms(shared.started),
        });
    }
    let shares_phone = phone.as_deref().is_some_and(|p| shares_phone(&shared, &config, p));
    if let Some(url) = config.webhook_url.clone() {
        let statuses = StatusPlan {
            url,
            wamid: wamid.clone(),
            phone_number_id: phone_number_id.clone(),
            phone: phone.clone().filter(|_| shares_phone || by_phone.is_some()),
            bsuid: bsuid.clone(),
            to_bsuid: by_bsuid.is_some(),
            callback: callback_data.clone(),
            category: if is_template { template_category.clone() } else { "service".into() },
            failed: match accept_then {
                Some(FaultKind::FailedStatus { code }) => Some(code),
                _ => None,
            },
            config: config.clone(),
        };
        tokio::spawn(post_statuses(shared.clone(), statuses));
    }
    match accept_then {
        Some(FaultKind::HttpStatus { status, .. }) => {
            return answer(status, None, json!({"error": {"message": "Service temporarily unavailable"}}));
        }
        Some(FaultKind::Delay { millis, .. }) => tokio::time::sleep(Duration::from_millis(millis)).await,
        _ => {}
    }
    // contacts[]: what was sent to, the phone (unless the send was to a BSUID), and the BSUID.
    let mut contact = json!({"input": to});
    if let Some(phone) = &by_phone {
        contact["wa_id"] = json!(phone);
    }
    if !bsuid.is_empty() {
        contact["user_id"] = json!(bsuid);
    }
    answer(
        200,
        None,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }),
    )
}

/// Takes the first fault for `endpoint` (and, for sends, recipient `to`).
pub(crate) fn take_fault_for(shared: &Shared, endpoint: &str, to: &str) -> Option<FaultKind> {
    let mut counters = lock(&shared.counters);
    let index = counters.faults.iter().position(|f| {
        f.count > 0
            && f.endpoint.as_deref().unwrap_or("messages") == endpoint
            && f.to.as_deref().is_none_or(|t| t == to || endpoint != "messages")
    })?;
    let fault = &mut counters.faults[index];
    fault.count -= 1;
    let kind = fault.kind.clone();
    if fault.count == 0 {
        counters.faults.remove(index);
    }
    Some(kind)
}

/// Throughput per number over a sliding second (130429), then the pair rate (131056).
fn check_limits(shared: &Shared, config: &SimConfig, phone_number_id: &str, to: &str) -> Result<(), i64> {
    let now = Instant::now();
    let mut counters = lock(&shared.counters);
    let window = counters.per_number.entry(phone_number_id.to_owned()).or_default();
    while window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
        window.pop_front();
    }
    if window.len() >= config.messages_per_second as usize {
        return Err(130_429);
    }
    let burst = f64::from(config.pair_burst.max(1));
    let refill = 1.0 / config.pair_interval.as_secs_f64().max(0.001);
    let (tokens, last) = counters.pair.entry((phone_number_id.to_owned(), to.to_owned())).or_insert((burst, now));
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * refill).min(burst);
    *last = now;
    if *tokens < 1.0 {
        return Err(131_056);
    }
    *tokens -= 1.0;
    counters.per_number.entry(phone_number_id.to_owned()).or_default().push_back(now);
    Ok(())
}

/// Meta's messaging limit: a template to a user outside their service window counts that user
/// once per rolling 24 hours; false when the user is new and the limit is reached.
fn check_messaging_limit(shared: &Shared, config: &SimConfig, bsuid: &str) -> bool {
    let Some(limit) = config.messaging_limit else { return true };
    let day = Duration::from_secs(24 * 3600);
    let now = Instant::now();
    let mut counters = lock(&shared.counters);
    if counters.inbound.get(bsuid).is_some_and(|at| now.duration_since(*at) < day) {
        return true;
    }
    counters.reached.retain(|_, at| now.duration_since(*at) < day);
    if counters.reached.contains_key(bsuid) {
        return true;
    }
    if counters.reached.len() as u64 >= limit {
        counters.limit_refusals += 1;
        return false;
    }
    counters.reached.insert(bsuid.to_owned(), now);
    true
}

/// The display number of a business number, as webhooks' metadata and quality updates name it:
/// `1555` and seven digits of its id (the simulator serves any id).
#[must_use]
pub fn display_number(phone_number_id: &str) -> String {
    let digits: String = phone_number_id.chars().filter(char::is_ascii_digit).collect();
    let tail = &digits[digits.len().saturating_sub(7)..];
    format!("1555{tail:0>7}")
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct StatusPlan {
    url: String,
    wamid: String,
    phone_number_id: String,
    /// The recipient's phone, when webhooks may name it.
    phone: Option<String>,
    /// The recipient's BSUID.
    bsuid: String,
    /// The message was sent to the BSUID (then statuses carry `recipient_user_id`).
    to_bsuid: bool,
    callback: Option<String>,
    category: String,
    /// Report the message failed with this code.
    failed: Option<i64>,
    config: SimConfig,
}

/// Posts sent → delivered → read for one message (or `failed`, without contacts), signed like
/// Meta, retrying a few times. Sent, delivered and read carry `contacts` since 2026; the recipient
/// is `recipient_id` (phone, omitted when it may not be shared) and, for a send to a BSUID,
/// `recipient_user_id`.
async fn post_statuses(shared: Arc<Shared>, plan: StatusPlan) {
    let billable = plan.category != "service";
    let statuses: &[&str] = match plan.failed {
        Some(131_026 | 131_049 | 130_472) => &["failed"],
        Some(_) => &["sent", "failed"],
        None => &["sent", "delivered", "read"],
    };
    for status in statuses {
        tokio::time::sleep(plan.config.status_delay).await;
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut item = json!({"id": plan.wamid, "status": status, "timestamp": timestamp.to_string()});
        if let Some(phone) = &plan.phone {
            item["recipient_id"] = json!(phone);
        }
        if plan.to_bsuid {
            item["recipient_user_id"] = json!(plan.bsuid);
        }
        if let Some(callback) = &plan.callback {
            item["biz_opaque_callback_data"] = json!(callback);
        }
        let mut value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display_number(&plan.phone_number_id), "phone_number_id": plan.phone_number_id},
        });
        if *status == "failed" {
            let code = plan.failed.unwrap_or(131_000);
            item["errors"] = json!([{"code": code, "title": error_title(code), "message": error_title(code),
                "error_data": {"details": error_title(code)}}]);
        } else {
            item["pricing"] = json!({
                "billable": billable,
                "pricing_model": "PMP",
                "category": plan.category,
                "type": if billable { "regular" } else { "free_customer_service" },
            });
            let mut contact = json!({"profile": {"name": "Simulated User"}, "user_id": plan.bsuid});
            if let Some(phone) = &plan.phone {
                contact["wa_id"] = json!(phone);
            }
            if plan.config.parent_ids
                && let Some(phone) = &plan.phone
            {
                let parent = parent_bsuid_for(&plan.config.waba_id, phone);
                contact["parent_user_id"] = json!(parent);
                item["parent_recipient_user_id"] = json!(parent);
            }
            value["contacts"] = json!([contact]);
        }
        value["statuses"] = json!([item]);
        let payload = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": plan.config.waba_id, "changes": [{"field": "messages", "value": value}]}],
        });
        post_webhook(&shared, &plan.config, &plan.url, &payload).await;
    }
}

/// Whether webhooks may name `phone`: not for username users (withheld by hand, or by the
/// configured suffix).
fn shares_phone(shared: &Shared, config: &SimConfig, phone: &str) -> bool {
    lock(&shared.users).shares_phone(phone)
        && !config.username_phone_suffix.as_deref().is_some_and(|suffix| !suffix.is_empty() && phone.ends_with(suffix))
}

/// Posts a signed webhook, retrying a few times as Meta does; true when answered 200.
async fn post_webhook(shared: &Shared, config: &SimConfig, url: &str, payload: &Value) -> bool {
    let body = payload.to_string();
    let signature = wa_core::signature::sign(config.app_secret.as_bytes(), body.as_bytes());
    for attempt in 0..5u32 {
        let response = shared
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
            lock(&shared.counters).webhooks_delivered += 1;
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
    }
    false
}

/// A message from a user (`POST /_sim/inbound`).
#[derive(Debug, Clone, Deserialize)]
pub struct UserMessage {
    /// The business number written to.
    pub phone_number_id: String,
    /// The user's wa_id.
    pub from: String,
    /// The user's profile name.
    #[serde(default)]
    pub name: String,
    /// What the user wrote.
    pub text: String,
    /// The user hides their phone behind a username: the webhook carries the BSUID only.
    #[serde(default)]
    pub withhold_phone: bool,
}

async fn deliver_user_message(shared: &Shared, message: &UserMessage) -> Result<String, String> {
    let config = lock(&shared.config).clone();
    let url = config.webhook_url.clone().ok_or("the simulator has no webhook URL to post to")?;
    let serial = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let wamid = format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("SIM:{}:IN:{}:{serial:012}", shared.instance, message.from))
    );
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Since 2026-03-31: the BSUID beside the phone, or instead of it for a username user.
    let phone = message.from.trim_start_matches('+');
    let bsuid = lock(&shared.users).bsuid(&config.waba_id, phone);
    lock(&shared.counters).inbound.insert(bsuid.clone(), Instant::now());
    let shares_phone = shares_phone(shared, &config, phone) && !message.withhold_phone;
    let mut contact = json!({"profile": {"name": message.name}, "user_id": bsuid});
    let mut item = json!({"from_user_id": bsuid, "id": wamid, "timestamp": timestamp.to_string(),
                          "type": "text", "text": {"body": message.text}});
    if shares_phone {
        contact["wa_id"] = json!(phone);
        item["from"] = json!(phone);
    } else {
        contact["profile"]["username"] = json!(format!("@user{}", &bsuid[bsuid.len().saturating_sub(4)..]));
    }
    if config.parent_ids {
        let parent = parent_bsuid_for(&config.waba_id, phone);
        contact["parent_user_id"] = json!(parent);
        item["from_parent_user_id"] = json!(parent);
    }
    let payload = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": config.waba_id, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display_number(&message.phone_number_id), "phone_number_id": message.phone_number_id},
            "contacts": [contact],
            "messages": [item],
        }}]}],
    });
    let body = payload.to_string();
    let signature = wa_core::signature::sign(config.app_secret.as_bytes(), body.as_bytes());
    let response = shared
        .http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the webhook: {}", e.without_url()))?;
    if response.status() == reqwest::StatusCode::OK {
        lock(&shared.counters).webhooks_delivered += 1;
        Ok(wamid)
    } else {
        Err(format!("the webhook answered {}", response.status()))
    }
}

/// Posts the `system` message of an identity change ([`IdentityChange`]): `user_changed_number`
/// with the new phone and BSUIDs and the previous ones, from the old phone; or
/// `user_changed_user_id` with a new BSUID (the simulator's users then have it).
async fn deliver_identity_change(shared: &Shared, change: &IdentityChange) -> Result<String, String> {
    let config = lock(&shared.config).clone();
    let url = config.webhook_url.clone().ok_or("the simulator has no webhook URL to post to")?;
    let old_phone = change.phone.trim_start_matches('+').to_owned();
    let serial = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let wamid = format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(format!("SIM:{}:SYS:{serial:012}", shared.instance))
    );
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (previous, system, from) = {
        let mut users = lock(&shared.users);
        let previous = users.bsuid(&config.waba_id, &old_phone);
        match &change.new_phone {
            Some(new_phone) => {
                let new_phone = new_phone.trim_start_matches('+').to_owned();
                let bsuid = users.bsuid(&config.waba_id, &new_phone);
                let system = json!({"body": "User changed from one number to another", "wa_id": new_phone,
                    "user_id": bsuid, "parent_user_id": parent_bsuid_for(&config.waba_id, &new_phone),
                    "previous_user_id": previous, "previous_parent_user_id": parent_bsuid_for(&config.waba_id, &old_phone),
                    "type": "user_changed_number"});
                (previous, system, json!(old_phone))
            }
            None => {
                // A new BSUID for the same phone: issued from the phone and the change's serial.
                let bsuid = bsuid_for(&config.waba_id, &format!("{old_phone}#{serial}"));
                users.by_bsuid.insert(bsuid.clone(), old_phone.clone());
                let system = json!({"body": "User's id changed", "user_id": bsuid, "previous_user_id": previous,
                    "type": "user_changed_user_id"});
                (previous, system, json!(old_phone))
            }
        }
    };
    let _ = previous;
    let payload = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": config.waba_id, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display_number(&change.phone_number_id), "phone_number_id": change.phone_number_id},
            "messages": [{"from": from, "id": wamid, "timestamp": timestamp.to_string(), "type": "system", "system": system}],
        }}]}],
    });
    if post_webhook(shared, &config, &url, &payload).await {
        Ok(wamid)
    } else {
        Err("the webhook did not answer 200".into())
    }
}

async fn identity_change_route(State(shared): State<Arc<Shared>>, Json(change): Json<IdentityChange>) -> Response {
    match deliver_identity_change(&shared, &change).await {
        Ok(wamid) => respond(200, json!({"wamid": wamid})),
        Err(error) => respond(502, json!({"error": error})),
    }
}

/// `GET /{version}/{id}`: a media id's download URL, else the business number's fields.
async fn object(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = media::info(&shared, &id, &query, &headers) {
        return answer;
    }
    admin::phone_number(State(shared), Path((version, id)), uri, headers).await
}

/// `POST /{version}/{id}`: a template edit.
async fn edit_object(
    State(shared): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !media::bearer_ok(&shared, &headers) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    match templates::edit(&shared, &id, &body).await {
        Some(answer) => answer,
        None => respond(400, meta_error(100, "Invalid parameter", Some("no such template"), trace)),
    }
}

/// Any path the simulator does not serve: Meta's JSON error for unknown path components.
async fn unknown_path(uri: axum::http::Uri) -> Response {
    respond(
        400,
        json!({"error": {"message": format!("Unknown path components: {}", uri.path()), "type": "OAuthException",
            "code": 2500, "fbtrace_id": "SimUnknownPath"}}),
    )
}

async fn user_message(State(shared): State<Arc<Shared>>, Json(message): Json<UserMessage>) -> Response {
    match deliver_user_message(&shared, &message).await {
        Ok(wamid) => respond(200, json!({"wamid": wamid})),
        Err(error) => respond(502, json!({"error": error})),
    }
}

async fn add_fault(State(shared): State<Arc<Shared>>, Json(fault): Json<Fault>) -> Response {
    lock(&shared.counters).faults.push(fault);
    respond(200, json!({"ok": true}))
}

async fn list_messages(State(shared): State<Arc<Shared>>) -> Response {
    let accepted = lock(&shared.counters).accepted.clone();
    respond(200, serde_json::to_value(accepted).unwrap_or_default())
}
