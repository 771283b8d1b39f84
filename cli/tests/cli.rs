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
