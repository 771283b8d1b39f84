//! The `wa` binary, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const WA: &str = env!("CARGO_BIN_EXE_wa");

#[test]
fn sign_prints_the_header_meta_would_send() {
    let dir = std::env::temp_dir().join(format!("wa-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.json");
    std::fs::write(&file, br#"{"a":1}"#).unwrap();
    let out =
        Command::new(WA).args(["sign", file.to_str().unwrap(), "--app-secret", "test-app-secret"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "X-Hub-Signature-256: sha256=a9076adb7408d26443ef1902aaae098b7ab6b934eddfa6fc1338cd0153ddda4d"
    );
    let out = Command::new(WA).args(["sign", "/nonexistent/body.json", "--app-secret", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("cannot read /nonexistent/body.json"));
    let out = Command::new(WA).args(["simulator", "--messages-per-second", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("--messages-per-second"));
    let out = Command::new(WA).args(["stats", "--table", "t"]).env_remove("STATE_TABLE").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--phone <PHONE>"));
    let out =
        Command::new(WA).args(["stats", "--table", "t", "--message", "wamid.1", "--phone", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("cannot be used with"));
    let out = Command::new(WA).args(["stats", "--table", "t", "--phone", "1", "--rate-card", "INR"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--rate-card: a rate card looks like"));
    let out = Command::new(WA)
        .args(["doctor", "--waba-id", "1", "--phone-number-id", "2"])
        .env_remove("WHATSAPP_SECRET_ID")
        .env_remove("WA_APP_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("set --secret-id, or WA_APP_ID"));
    // Templates as code: exit 0 when clean, 1 with errors (a CI step), 2 when a file cannot be read.
    let good = dir.join("order_update.json");
    std::fs::write(
        &good,
        r#"{"name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}, your order ships today.", "example": {"body_text": [["Ana"]]}}]}"#,
    )
    .unwrap();
    let out = Command::new(WA).args(["templates", "lint", good.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let bad = dir.join("promo.yaml");
    std::fs::write(
        &bad,
        "name: Spring Sale
language: en_US
category: MARKETING
components:
  - type: BODY
    text: \"{{1}}{{2}} off\"
",
    )
    .unwrap();
    let out = Command::new(WA).args(["templates", "lint", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("error name.format at name") && report.contains("error parameter.adjacent"), "{report}");
    let out = Command::new(WA).args(["templates", "lint", "/nonexistent.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(WA).args(["dev", "--demo", "--webhook-only"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("cannot be used with"));
}

#[test]
fn simulator_serves_the_messages_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(WA)
        .args(["simulator", "--listen", &format!("127.0.0.1:{port}"), "--access-token", "t0k"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first_line).unwrap();
    assert!(first_line.contains(&format!("127.0.0.1:{port}")), "{first_line}");
    let body = r#"{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{"body":"hi"}}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /v23.0/123/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("wamid."));
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wa-{name}-{}-{}", std::process::id(), wa_infra::telemetry::now_millis()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn dev_demo_plays_the_whole_scenario() {
    let dir = temp_dir("demo");
    let data = dir.to_str().unwrap();
    for round in 0..2 {
        // Twice on the same data: a restarted stack keeps its state and still behaves.
        let out = Command::new(WA)
            .args(["dev", "--demo", "--data-dir", data, "--listen", "127.0.0.1:0", "--simulator-listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "round {round}\n{stdout}\n{stderr}");
        for expected in [
            "accepted; sent, delivered and read came back as signed webhooks",
            "the 24-hour service window is open, under her phone and her business-scoped user id",
            "accepted, by phone and by business-scoped user id",
            "refused: window_closed, no Graph call; its fallback SMS went out instead (printed, not sent)",
            "✉ fallback    SMS to …0102 (not sent: local stack)",
            "✉ fallback    sms sent after window_closed",
            "opted out of marketing",
            "refused: opted_out, no Graph call",
            "its SHA-256 checked against the webhook's",
            "; stored as media/106540352242922/",
            "uploaded to Meta once, sent by its media id",
            "linted, pushed (PENDING), approved by webhook into the registry, sent",
            "demo finished: every step went as expected",
        ] {
            assert!(stdout.contains(expected), "round {round}: {expected:?} missing\n{stdout}");
        }
        // The console masks numbers and never shows message text.
        assert!(!stdout.contains("16505550101") && !stdout.contains("Is my order ready"), "{stdout}");
        assert!(!stdout.contains("16505550102") && !stdout.contains("WhatsApp could not reach you"), "{stdout}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A running `wa dev`, stopped when dropped.
struct Dev(std::process::Child, String);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_dev(data: &str) -> Dev {
    let mut child = Command::new(WA)
        .args(["dev", "--data-dir", data, "--listen", "127.0.0.1:0", "--simulator-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("wa dev printed its webhook URL").unwrap();
        if let Some(rest) = line.trim().strip_prefix("webhook") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep reading so that the console never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Dev(child, url)
}

fn events(data: &str) -> Vec<serde_json::Value> {
    let db = wa_infra_local::LocalDb::open(&std::path::Path::new(data).join("state.sqlite3")).unwrap();
    wa_cli::dev::Queues::of(&db)
        .events
        .peek(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|(_, body, _)| serde_json::from_str(&body).unwrap())
        .collect()
}

fn wait_for(data: &str, what: &str, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..200 {
        if let Some(event) = events(data).into_iter().find(|e| matches(e)) {
            return event;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what}: not on the events queue")
}

#[test]
fn send_replay_and_dlq_work_against_the_local_stack_and_survive_a_restart() {
    let dir = temp_dir("stack");
    let data = dir.to_str().unwrap();
    let dev = start_dev(data);

    // Meta's 16 example webhooks, signed with the development secret: all accepted.
    let out = Command::new(WA)
        .args(["replay", &dev.1, "--from", concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/meta/webhooks")])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("16 payloads posted"), "{report}");
    // A wrong secret is refused, and replay says so.
    let out = Command::new(WA)
        .args([
            "replay",
            &dev.1,
            "--app-secret",
            "wrong",
            "--from",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/meta/webhooks/text-message.json"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("401 text-message.json"));
    wait_for(data, "the replayed text message", |e| e["kind"] == "message" && e["payload"]["type"] == "text");

    // Meta's 2026 payloads (BSUIDs, statuses with contacts, identity changes, template and limit
    // webhooks) and a webhook of 2.9 MB, under Meta's 3 MB: all accepted.
    let out = Command::new(WA)
        .args(["replay", &dev.1, "--from", concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/meta2026")])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.contains("19 payloads posted"), "{report}");
    let big = dir.join("big-webhook.json");
    let messages: Vec<serde_json::Value> = (0..700)
        .map(|i| {
            serde_json::json!({"from": "16505550177", "id": format!("wamid.big{i}"), "timestamp": "1790000000",
                               "type": "text", "text": {"body": "x".repeat(4000)}})
        })
        .collect();
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"}, "messages": messages}}]}]});
    std::fs::write(&big, body.to_string()).unwrap();
    assert!((2_800_000..3_000_000).contains(&std::fs::metadata(&big).unwrap().len()));
    let out = Command::new(WA).args(["replay", &dev.1, "--from", big.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    wait_for(data, "the big webhook's last message", |e| e["event_id"] == "wamid.big699");

    // A template through `wa send`.
    let out = Command::new(WA)
        .args(["send", "--to", "16505550199", "--template", "hello_world", "--key", "cli-1", "--data-dir", data])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("idempotency key cli-1"));
    let outcome = wait_for(data, "cli-1", |e| e["idempotency_key"] == "cli-1");
    assert_eq!(outcome["status"], "accepted", "{outcome}");

    // A document from a file: checked, put in the local blob store, sent by the sender (to a user
    // who never wrote: refused as free-form outside the window, but queued and handled).
    let pdf = dir.join("report.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 a lab report").unwrap();
    let out = Command::new(WA)
        .args(["send", "--to", "16505550199", "--document", pdf.to_str().unwrap(), "--caption", "Lab"])
        .args(["--key", "cli-doc", "--data-dir", data])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome = wait_for(data, "cli-doc", |e| e["idempotency_key"] == "cli-doc");
    assert_eq!(outcome["status"], "window_closed", "{outcome}");
    let zip = dir.join("data.zip");
    std::fs::write(&zip, b"PK").unwrap();
    let out = Command::new(WA)
        .args(["send", "--to", "16505550199", "--document", zip.to_str().unwrap(), "--data-dir", data])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "refused before anything is queued");
    assert!(String::from_utf8_lossy(&out.stderr).contains("media.mime_type"));

    // Stopped, a request waits in the queue; restarted, it is sent.
    drop(dev);
    let out = Command::new(WA)
        .args(["send", "--to", "16505550199", "--template", "hello_world", "--key", "cli-2", "--data-dir", data])
        .output()
        .unwrap();
    assert!(out.status.success());
    // An event older than the queue's 7-day retention (the oldest id), as if the stack had been
    // left running: the restarted stack deletes it (and every minute after), as SQS would.
    let db = rusqlite::Connection::open(std::path::Path::new(data).join("state.sqlite3")).unwrap();
    let eight_days_ago = i64::try_from(wa_infra::telemetry::now_millis()).unwrap() - 8 * 24 * 3600 * 1000;
    db.execute(
        "INSERT INTO messages(id, queue, body, visible_at, sent_at) VALUES (-1, 'events', '{}', 0, ?1)",
        [eight_days_ago],
    )
    .unwrap();
    // And a send record past its expiry (DynamoDB's TTL deletes those in AWS).
    db.execute(
        "INSERT INTO sends(key, state, outcome, expires_at) VALUES ('expired-key', 'COMPLETED', '{}', ?1)",
        [eight_days_ago / 1000],
    )
    .unwrap();
    let expired = || -> i64 {
        db.query_row(
            "SELECT (SELECT COUNT(*) FROM messages WHERE id = -1) + (SELECT COUNT(*) FROM sends WHERE key = 'expired-key')",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(expired(), 2);
    let _dev = start_dev(data);
    let outcome = wait_for(data, "cli-2", |e| e["idempotency_key"] == "cli-2");
    assert_eq!(outcome["status"], "accepted", "{outcome}");
    for _ in 0..100 {
        if expired() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(expired(), 0, "the expired event and send record are gone");
    drop(db);

    // Nothing dead-lettered; helpful errors for bad input.
    let out = Command::new(WA).args(["dlq", "list", "--queue", "inbound", "--data-dir", data]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("inbound-dlq: 0 message(s)"));

    // A send request that failed for good earlier sits in the outbound DLQ: listed, redriven, sent.
    {
        let db = wa_infra_local::LocalDb::open(&std::path::Path::new(data).join("state.sqlite3")).unwrap();
        let dead = serde_json::json!({"phone_number_id": "106540352242922", "to": "16505550199", "idempotency_key": "cli-3",
            "message": {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}});
        wa_cli::dev::Queues::of(&db)
            .outbound
            .dlq()
            .send(&dead.to_string(), Some("106540352242922#16505550199"), Some("cli-3"))
            .unwrap();
    }
    let out = Command::new(WA).args(["dlq", "list", "--queue", "outbound.fifo", "--data-dir", data]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("outbound.fifo-dlq: 1 message(s)") && listing.contains("send request cli-3 (template"),
        "{listing}"
    );
    assert!(!listing.contains("16505550199"), "{listing}");
    let out =
        Command::new(WA).args(["dlq", "redrive", "--queue", "outbound.fifo", "--data-dir", data]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("1 message(s) moved from outbound.fifo-dlq back to outbound.fifo")
    );
    let outcome = wait_for(data, "cli-3", |e| e["idempotency_key"] == "cli-3");
    assert_eq!(outcome["status"], "accepted", "{outcome}");
    let out = Command::new(WA).args(["dlq", "list", "--queue", "nope", "--data-dir", data]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no local queue \"nope\""));
    let out = Command::new(WA).args(["send", "--to", "16505550199", "--data-dir", data]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--text"));
    let out = Command::new(WA)
        .args(["send", "--to", "16505550199", "--text", &"x".repeat(4097), "--data-dir", data])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("text.body"));
}
