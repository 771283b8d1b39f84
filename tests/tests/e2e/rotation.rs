//! Secret rotation and the token watchdog against moto's Secrets Manager and the simulator's
//! token and subscription endpoints, with the real verify handler serving the webhook over HTTP
//! (the simulator verifies the callback on every subscription update, as Meta does).

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use secret_rotation::{OsRandom, Rotation, RotationError};
use serde_json::json;
use token_watchdog::Watchdog;
use wa_core::ports::{AdminError, GraphApi, MetaAdmin, SecretSource};
use wa_core::rotation::{RotationEvent, Watch};
use wa_core::secrets::{AppSecrets, SecretStage};
use wa_infra::graph::GraphClient;
use wa_infra::secrets::{CachePolicy, CachedSecrets, SecretsManagerFetch};
use wa_infra::vault::SecretsManagerVault;
use wa_simulator::{Fault, FaultKind, SimConfig, Simulator, TokenInfo};
use wa_tests::{create_secret, logs, moto_config, sdk_config};

const APP_ID: &str = "1234567890";
const PHONE: &str = "106540352242922";
const DAY: u64 = 86_400;
const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

fn new_version_id() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let hex = format!("{:032x}", n ^ (u128::from(std::process::id()) << 64) ^ rand_bits());
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn rand_bits() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    u128::from(N.fetch_add(1, Ordering::Relaxed)) << 96
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

type Verify = CachedSecrets<SecretsManagerFetch>;

struct Rig {
    aws: SdkConfig,
    secret_id: String,
    sim: Simulator,
    graph: GraphClient,
    webhook_url: String,
    /// The verify function's cache (what Meta's verification GET reaches).
    verify: Arc<Verify>,
    server: tokio::task::JoinHandle<()>,
    old: AppSecrets,
}

/// Serves the real verify handler on loopback: GET /webhook.
async fn serve_verify(secrets: Arc<Verify>) -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{Method, StatusCode, Uri};
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let secrets = secrets.clone();
        async move {
            let request =
                lambda_http::http::Request::builder().method(method).uri(uri).body(lambda_http::Body::Empty).unwrap();
            let response = webhook_verify::handle(secrets.as_ref(), &request).await;
            (StatusCode::from_u16(response.status().as_u16()).unwrap(), response.body().to_vec())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, server)
}

impl Rig {
    /// A secret whose token expires in `days_left` days, the simulator knowing the same app, and
    /// Meta's webhook subscribed to the verify handler with the current verify token.
    async fn new(days_left: u64) -> Self {
        let aws = moto_config().await;
        let n = wa_tests::unique("rot");
        let old = AppSecrets::from_json(
            &json!({"app_id": APP_ID, "app_secret": format!("app-secret-{n}"), "verify_token": format!("verify-{n}"),
                    "access_token": format!("EAAold{n}"), "phone_number_tokens": {"999000111": format!("EAAnumber{n}")}})
            .to_string(),
        )
        .unwrap();
        let text = serde_json::to_string(&old).unwrap();
        let secret_id = create_secret(&aws, &text, None, None).await;
        let config = SimConfig {
            access_token: old.access_token.clone(),
            access_token_expires_at: now_s() + days_left * DAY,
            app_id: APP_ID.into(),
            app_secret: old.app_secret.clone(),
            ..SimConfig::default()
        };
        let sim = Simulator::start("127.0.0.1:0", config).await.unwrap();
        sim.set_token(&old.phone_number_tokens["999000111"], TokenInfo::whatsapp(APP_ID, now_s() + 90 * DAY));
        let graph = GraphClient::new(&sim.base_url(), "v23.0", Duration::from_secs(5)).unwrap();
        let fetch = SecretsManagerFetch::new(aws_sdk_secretsmanager::Client::new(&aws), secret_id.clone());
        let policy = CachePolicy { min_refresh_interval: Duration::from_millis(200), ..CachePolicy::default() };
        let verify = Arc::new(CachedSecrets::new(fetch, policy));
        let (webhook_url, server) = serve_verify(verify.clone()).await;
        graph.subscribe(&old, &webhook_url, &old.verify_token).await.expect("the first subscription verifies");
        Self { aws, secret_id, sim, graph, webhook_url, verify, server, old }
    }

    fn rotation_via(&self, aws: &SdkConfig) -> Rotation<SecretsManagerVault, GraphClient, OsRandom> {
        Rotation {
            vault: SecretsManagerVault::new(aws_sdk_secretsmanager::Client::new(aws)),
            meta: self.graph.clone(),
            random: OsRandom,
            fallback_webhook_url: None,
        }
    }

    fn rotation(&self) -> Rotation<SecretsManagerVault, GraphClient, OsRandom> {
        self.rotation_via(&self.aws)
    }

    fn sm(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.aws)
    }

    /// Secrets Manager starts a rotation: it picks the new version's id and invokes the steps.
    /// (moto's RotateSecret cannot invoke a Lambda, and without one it labels an empty version
    /// AWSCURRENT at once; so the tests play Secrets Manager's part.)
    async fn begin(&self) -> String {
        new_version_id()
    }

    fn event(&self, step: &str, token: &str) -> RotationEvent {
        RotationEvent { step: step.into(), secret_id: self.secret_id.clone(), token: token.into() }
    }

    async fn stage(&self, stage: SecretStage) -> Option<AppSecrets> {
        let out = self.sm().get_secret_value().secret_id(&self.secret_id).version_stage(stage.as_aws()).send().await;
        let text = match out {
            Ok(out) => out.secret_string()?.to_owned(),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => return None,
            Err(e) => panic!("read {stage:?}: {e:?}"),
        };
        logs::note_secret_json(&text);
        Some(AppSecrets::from_json(&text).unwrap())
    }

    async fn current(&self) -> AppSecrets {
        self.stage(SecretStage::Current).await.expect("AWSCURRENT has a value")
    }

    async fn stages(&self) -> Vec<(String, Vec<String>)> {
        let out = self.sm().describe_secret().secret_id(&self.secret_id).send().await.unwrap();
        let mut v: Vec<_> = out.version_ids_to_stages().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort();
        v
    }

    /// What the functions do with the current value works: Meta's verification GET with its
    /// verify token, a send with its token, `debug_token` says valid.
    async fn assert_working(&self) {
        let current = self.current().await;
        let url = format!(
            "{}?hub.mode=subscribe&hub.challenge=4242&hub.verify_token={}",
            self.webhook_url, current.verify_token
        );
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200, "verification with the current token");
        assert_eq!(response.text().await.unwrap(), "4242");
        let message =
            json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": "hi"}});
        self.graph.send_message(PHONE, &current.access_token, &message).await.expect("a send with the current token");
        let debug = self.graph.debug_token(&current, &current.access_token).await.unwrap();
        assert!(debug.is_valid, "the current token is valid");
    }

    fn exchanges(&self) -> usize {
        self.sim.admin_calls().iter().filter(|c| c.endpoint == "oauth" && c.status == 200).count()
    }
}

#[tokio::test]
async fn each_step_runs_twice_and_the_pipeline_keeps_working_throughout() {
    let rig = Rig::new(20).await;
    let token = rig.begin().await;
    for step in STEPS {
        for round in 0..2 {
            rig.rotation()
                .handle(&rig.event(step, &token), now_s())
                .await
                .unwrap_or_else(|e| panic!("{step} #{round}: {e}"));
            rig.assert_working().await;
        }
        if step == "createSecret" {
            assert_eq!(rig.exchanges(), 2, "one exchange per distinct token, not per attempt");
        }
    }
    let new = rig.current().await;
    let previous = rig.stage(SecretStage::Previous).await.unwrap();
    assert_eq!(previous, rig.old, "the old value is AWSPREVIOUS");
    assert_ne!(new.access_token, rig.old.access_token);
    assert_ne!(new.phone_number_tokens["999000111"], rig.old.phone_number_tokens["999000111"]);
    assert_ne!(new.verify_token, rig.old.verify_token);
    assert_eq!(new.verify_token.len(), 64, "32 random bytes, hex");
    assert_eq!((new.app_id.as_str(), new.app_secret.as_str()), (APP_ID, rig.old.app_secret.as_str()), "carried over");
    let info = rig.sim.token(&new.access_token).unwrap();
    assert!(info.expires_at >= now_s() + 59 * DAY, "a 60-day token");
    let subscription = &rig.sim.subscriptions()[0];
    assert_eq!(subscription.verify_token, new.verify_token, "Meta verified the new token");
    assert_eq!(subscription.callback_url, rig.webhook_url, "the callback URL is kept");
    let stages = rig.stages().await;
    assert!(stages.iter().all(|(_, s)| !s.contains(&"AWSPENDING".to_owned())), "{stages:?}");
    assert!(stages.iter().any(|(id, s)| id == &token && s.contains(&"AWSCURRENT".to_owned())), "{stages:?}");
    // The old verify token is no longer accepted once the new one is current.
    let url =
        format!("{}?hub.mode=subscribe&hub.challenge=1&hub.verify_token={}", rig.webhook_url, rig.old.verify_token);
    tokio::time::sleep(Duration::from_millis(250)).await;
    rig.verify.refresh(SecretStage::Current).await.unwrap();
    rig.verify.refresh(SecretStage::Pending).await.unwrap();
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 403);

    // Unknown versions and steps are refused with a reason.
    let err = rig.rotation().handle(&rig.event("setSecret", &new_version_id()), now_s()).await.unwrap_err();
    assert!(matches!(err, RotationError::NotRotating(_)), "{err}");
    let err = rig.rotation().handle(&rig.event("rotate", &token), now_s()).await.unwrap_err();
    assert!(err.to_string().contains("unknown rotation step"), "{err}");
}

#[tokio::test]
async fn a_failure_at_any_step_leaves_the_current_value_working_and_a_retry_completes() {
    let dead = {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        sdk_config(&format!("http://127.0.0.1:{port}")).await
    };
    for (failing, index) in STEPS.iter().zip(0..) {
        let rig = Rig::new(20).await;
        let token = rig.begin().await;
        for step in &STEPS[..index] {
            rig.rotation().handle(&rig.event(step, &token), now_s()).await.unwrap();
        }
        let endpoint = match *failing {
            "createSecret" => Some("oauth"),
            "setSecret" => Some("subscriptions"),
            "testSecret" => Some("debug_token"),
            _ => None,
        };
        let result = match endpoint {
            Some(endpoint) => {
                rig.sim.inject(Fault {
                    kind: FaultKind::Error { code: 2, http_status: 400 },
                    count: 1,
                    to: None,
                    endpoint: Some(endpoint.into()),
                });
                rig.rotation().handle(&rig.event(failing, &token), now_s()).await
            }
            // Secrets Manager unreachable while finishing.
            None => rig.rotation_via(&dead).handle(&rig.event(failing, &token), now_s()).await,
        };
        assert!(result.is_err(), "{failing} fails");
        assert_eq!(rig.current().await, rig.old, "{failing}: AWSCURRENT untouched");
        rig.assert_working().await;

        // Secrets Manager retries the rotation with the same version: it completes.
        for step in STEPS {
            rig.rotation()
                .handle(&rig.event(step, &token), now_s())
                .await
                .unwrap_or_else(|e| panic!("retry {step}: {e}"));
        }
        assert_ne!(rig.current().await.access_token, rig.old.access_token, "{failing}: rotated on retry");
        rig.assert_working().await;
    }
}

#[tokio::test]
async fn test_secret_refuses_a_short_lived_or_foreign_token() {
    let rig = Rig::new(20).await;
    let token = rig.begin().await;
    rig.rotation().handle(&rig.event("createSecret", &token), now_s()).await.unwrap();
    let pending = rig.stage(SecretStage::Pending).await.unwrap();
    rig.sim.set_token(&pending.access_token, TokenInfo::whatsapp(APP_ID, now_s() + 10 * DAY));
    let err = rig.rotation().handle(&rig.event("testSecret", &token), now_s()).await.unwrap_err();
    assert!(err.to_string().contains("fewer than 50"), "{err}");
    rig.sim.set_token(&pending.access_token, TokenInfo::whatsapp("555", 0));
    let err = rig.rotation().handle(&rig.event("testSecret", &token), now_s()).await.unwrap_err();
    assert!(err.to_string().contains("belongs to app"), "{err}");
    let mut scoped = TokenInfo::whatsapp(APP_ID, 0);
    scoped.scopes.retain(|s| s != "whatsapp_business_management");
    rig.sim.set_token(&pending.access_token, scoped);
    let err = rig.rotation().handle(&rig.event("testSecret", &token), now_s()).await.unwrap_err();
    assert!(err.to_string().contains("whatsapp_business_management"), "{err}");
    assert_eq!(rig.current().await, rig.old);
    rig.assert_working().await;
}

#[tokio::test]
async fn set_secret_fails_when_meta_cannot_verify_the_webhook() {
    let rig = Rig::new(20).await;
    let token = rig.begin().await;
    rig.rotation().handle(&rig.event("createSecret", &token), now_s()).await.unwrap();
    // The webhook endpoint is down: Meta's verification GET fails, so does the subscription update.
    rig.server.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = rig.rotation().handle(&rig.event("setSecret", &token), now_s()).await.unwrap_err();
    assert!(matches!(&err, RotationError::Meta { error: AdminError::Meta { code: 2200, .. }, .. }), "{err}");
    assert_eq!(rig.sim.subscriptions()[0].verify_token, rig.old.verify_token, "the subscription is unchanged");
    assert_eq!(rig.current().await, rig.old, "AWSCURRENT untouched");
}

/// Secrets Manager on moto, except that RotateSecret invokes the rotation function's four steps
/// as Secrets Manager does on AWS (moto cannot invoke a Lambda).
struct InvokesRotation<'a> {
    vault: SecretsManagerVault,
    rig: &'a Rig,
}

impl wa_core::ports::SecretVault for InvokesRotation<'_> {
    async fn versions(&self, secret_id: &str) -> Result<wa_core::ports::Versions, wa_core::ports::VaultError> {
        self.vault.versions(secret_id).await
    }

    async fn value(
        &self,
        secret_id: &str,
        version: Option<&str>,
        stage: SecretStage,
    ) -> Result<Option<String>, wa_core::ports::VaultError> {
        self.vault.value(secret_id, version, stage).await
    }

    async fn put_pending(&self, secret_id: &str, version: &str, value: &str) -> Result<(), wa_core::ports::VaultError> {
        self.vault.put_pending(secret_id, version, value).await
    }

    async fn move_stage(
        &self,
        secret_id: &str,
        stage: SecretStage,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), wa_core::ports::VaultError> {
        self.vault.move_stage(secret_id, stage, to, from).await
    }

    async fn start_rotation(&self, secret_id: &str) -> Result<(), wa_core::ports::VaultError> {
        assert_eq!(secret_id, self.rig.secret_id);
        let token = new_version_id();
        for step in STEPS {
            let event = self.rig.event(step, &token);
            self.rig.rotation().handle(&event, now_s()).await.map_err(|e| wa_core::ports::VaultError(e.to_string()))?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_watchdog_rotates_early_and_alarms_on_invalid_tokens() {
    fn watchdog(rig: &Rig) -> Watchdog<InvokesRotation<'_>, GraphClient> {
        Watchdog {
            vault: InvokesRotation {
                vault: SecretsManagerVault::new(aws_sdk_secretsmanager::Client::new(&rig.aws)),
                rig,
            },
            meta: rig.graph.clone(),
            secret_ids: vec![rig.secret_id.clone()],
        }
    }
    // 30 days left: nothing to do.
    let rig = Rig::new(30).await;
    let report = watchdog(&rig).run(now_s()).await.remove(0);
    assert!(matches!(report.verdicts[0].1, Watch::Healthy { days_left: Some(29 | 30) }), "{report:?}");
    assert!(!report.rotation_started && report.failure.is_none(), "{report:?}");
    assert!(rig.stages().await.iter().all(|(_, s)| !s.contains(&"AWSPENDING".to_owned())));

    // 13 days left: a rotation starts; driven through, the new token has 60 days.
    let rig = Rig::new(13).await;
    let report = watchdog(&rig).run(now_s()).await.remove(0);
    assert!(matches!(report.verdicts[0].1, Watch::RotateEarly { days_left: 12 | 13 }), "{report:?}");
    assert!(report.rotation_started, "{report:?}");
    assert_ne!(rig.current().await.access_token, rig.old.access_token, "Secrets Manager ran the rotation");
    let report = watchdog(&rig).run(now_s()).await.remove(0);
    assert!(
        report.verdicts.iter().all(|(_, w)| matches!(w, Watch::Healthy { days_left: Some(59 | 60) })),
        "{report:?}"
    );
    assert!(!report.rotation_started);

    // A revoked token: the alarm, no rotation (an invalid token cannot be exchanged).
    let rig = Rig::new(30).await;
    let mut revoked = TokenInfo::whatsapp(APP_ID, 0);
    revoked.is_valid = false;
    rig.sim.set_token(&rig.old.access_token, revoked);
    let report = watchdog(&rig).run(now_s()).await.remove(0);
    assert!(
        matches!(&report.verdicts[0].1, Watch::Invalid(reason) if reason.contains("Session has expired")),
        "{report:?}"
    );
    assert!(!report.rotation_started);

    // Meta unreachable: a failure for the alarm, nothing else.
    let rig = Rig::new(30).await;
    rig.sim.inject(Fault {
        kind: FaultKind::HttpStatus { status: 503, accepted: false },
        count: 1,
        to: None,
        endpoint: Some("debug_token".into()),
    });
    let report = watchdog(&rig).run(now_s()).await.remove(0);
    assert!(report.failure.as_deref().is_some_and(|f| f.contains("503")), "{report:?}");
}

#[tokio::test]
async fn wa_doctor_finds_the_usual_setup_mistakes() {
    let rig = Rig::new(20).await;
    let args = wa_cli::doctor::DoctorArgs {
        secrets: rig.old.clone(),
        waba_id: SimConfig::default().waba_id,
        phone_number_id: PHONE.into(),
        graph_base: rig.sim.base_url(),
    };
    // The webhook is verified, but the app is not subscribed to the WABA: no message would arrive.
    let (report, ok) = wa_cli::doctor::doctor(&args, now_s()).await.unwrap();
    assert!(!ok, "{report}");
    assert!(
        report.contains("✓ access token: valid for 19 more days") || report.contains("✓ access token: valid for 20"),
        "{report}"
    );
    assert!(report.contains(&format!("✓ webhook: {} receives messages", rig.webhook_url)), "{report}");
    assert!(report.contains("the app is not subscribed (webhooks verify, but no message ever arrives)"), "{report}");
    assert!(report.contains("status CONNECTED, quality GREEN, throughput STANDARD"), "{report}");
    assert!(report.contains("1 check(s) failed"), "{report}");

    let http = reqwest::Client::new();
    let url = format!("{}/v23.0/{}/subscribed_apps", rig.sim.base_url(), args.waba_id);
    assert!(http.post(&url).bearer_auth(&rig.old.access_token).send().await.unwrap().status().is_success());
    let (report, ok) = wa_cli::doctor::doctor(&args, now_s()).await.unwrap();
    assert!(ok, "{report}");
    assert!(report.contains("all checks passed"), "{report}");

    // A Graph that redirects is reported as such, not followed (to where the app token would go).
    rig.sim.inject(Fault {
        kind: FaultKind::Redirect { status: 301, location: "https://graph.example.test/v23.0/subscriptions".into() },
        count: 1,
        to: None,
        endpoint: Some("subscriptions".into()),
    });
    let (report, ok) = wa_cli::doctor::doctor(&args, now_s()).await.unwrap();
    assert!(!ok);
    assert!(
        report.contains(
            "✗ webhook: cannot read the app's subscriptions: HTTP 301 redirect to https://graph.example.test, not followed"
        ),
        "{report}"
    );

    // An expiring token, a number under review, a wrong app secret.
    rig.sim.set_token(&rig.old.access_token, TokenInfo::whatsapp(APP_ID, now_s() + 3 * DAY));
    rig.sim.configure(|c| c.phone_status = "PENDING".into());
    let (report, ok) = wa_cli::doctor::doctor(&args, now_s()).await.unwrap();
    assert!(!ok);
    assert!(
        report.contains("✗ access token: expires in 2 days") || report.contains("✗ access token: expires in 3 days"),
        "{report}"
    );
    assert!(report.contains("status PENDING"), "{report}");
    let mut wrong = args.secrets.clone();
    wrong.app_secret = "not-it".into();
    let args = wa_cli::doctor::DoctorArgs { secrets: wrong, ..args };
    let (report, _) = wa_cli::doctor::doctor(&args, now_s()).await.unwrap();
    assert!(
        report.contains("✗ access token: debug_token failed") && report.contains("check app_id and app_secret"),
        "{report}"
    );
}
