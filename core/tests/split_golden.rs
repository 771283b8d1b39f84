//! `split_webhook` against a recorded outcome: Meta's 16 example webhooks, the 2026 payloads in
//! `fixtures/meta2026` (BSUIDs, statuses with contacts, identity changes, template and limit
//! webhooks, every pricing category) and the edge cases in
//! `fixtures/events/edge-webhooks.jsonl` (statuses, errors, non-object values, numbers for ids,
//! escaped and repeated keys, contacts matched by BSUID) each split into exactly the events, byte
//! for byte, recorded in `fixtures/events/split.golden.jsonl`. A change to the splitter that alters
//! any event (its id, its fields, its payload text) fails here; one that means to, re-records with
//! `WA_BLESS=1 cargo test -p wa-core --test split_golden` and shows the difference in review.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use wa_core::event::split_webhook;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The `.json` files of a fixtures folder, sorted, named `<prefix><file>`.
fn json_files(folder: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(fixtures().join(folder)).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "json"));
    files.sort();
    files
        .iter()
        .map(|p| (format!("{prefix}{}", p.file_name().unwrap().to_string_lossy()), std::fs::read(p).unwrap()))
        .collect()
}

/// Every input, named: `<example file>`, `meta2026/<file>` or `edge-webhooks.jsonl:<line>`.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut inputs = json_files("meta/webhooks", "");
    let edges = std::fs::read_to_string(fixtures().join("events/edge-webhooks.jsonl")).unwrap();
    for (i, line) in edges.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        inputs.push((format!("edge-webhooks.jsonl:{}", i + 1), line.as_bytes().to_vec()));
    }
    inputs.extend(json_files("meta2026", "meta2026/"));
    inputs
}

/// One line per input: its name, then each event as queued (or the error the body is parked with).
fn split_all() -> String {
    let mut out = String::new();
    for (name, body) in inputs() {
        out.push_str(&format!("# {name}\n"));
        match split_webhook(&body, 1_795_000_000_000) {
            Ok(events) => {
                for event in events {
                    let json = serde_json::to_string(&event).unwrap();
                    assert_eq!(event.to_json().unwrap(), json, "to_json writes what serde_json writes");
                    out.push_str(&json);
                    out.push('\n');
                }
            }
            Err(error) => out.push_str(&format!("error: {error}\n")),
        }
    }
    out
}

#[test]
fn every_recorded_webhook_splits_into_its_recorded_events() {
    let golden = fixtures().join("events/split.golden.jsonl");
    let actual = split_all();
    if std::env::var_os("WA_BLESS").is_some() {
        std::fs::write(&golden, &actual).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(&golden).expect("fixtures/events/split.golden.jsonl (WA_BLESS=1 records it)");
    for (line, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "line {} of split.golden.jsonl differs", line + 1);
    }
    assert_eq!(actual.lines().count(), expected.lines().count(), "as many lines as recorded");
    assert!(
        expected.lines().filter(|l| l.starts_with(r#"{"version":1,"#)).count() >= 30,
        "every kind of event is covered"
    );
}
