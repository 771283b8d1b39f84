//! Every test binary writes the logs of the code under test to `target/test-logs/`, and notes the
//! secret values it creates or receives in `target/test-logs/secrets.txt`; `scripts/check_logs.py`
//! (run by the test command after the suite) fails when any noted value appears in any log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Where the logs go.
#[must_use]
pub fn dir() -> PathBuf {
    std::env::var_os("WA_TEST_LOG_DIR").map_or_else(|| crate::repo_root().join("target/test-logs"), PathBuf::from)
}

/// Installs the file log subscriber of this test binary (once).
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        std::fs::create_dir_all(dir()).expect("create the test log directory");
        let name = std::env::args()
            .next()
            .and_then(|a| PathBuf::from(a).file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".into());
        let file = File::create(dir().join(format!("{name}-{}.jsonl", std::process::id()))).expect("create a log file");
        wa_infra::telemetry::init_logs_to(Mutex::new(file));
    });
}

/// Notes secret values that must never appear in a log (values shorter than 8 characters are
/// too common to check and are skipped by the checker).
pub fn note_secrets<'a>(values: impl IntoIterator<Item = &'a str>) {
    static FILE: OnceLock<Mutex<File>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        std::fs::create_dir_all(dir()).expect("create the test log directory");
        let path = dir().join("secrets.txt");
        Mutex::new(OpenOptions::new().create(true).append(true).open(path).expect("open secrets.txt"))
    });
    let mut file = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for value in values {
        writeln!(file, "{value}").expect("note a secret");
    }
}

/// Notes every secret value of an app secret JSON.
pub fn note_secret_json(text: &str) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else { return };
    let mut values: Vec<&str> = ["app_secret", "verify_token", "access_token"]
        .iter()
        .filter_map(|k| value.get(*k).and_then(serde_json::Value::as_str))
        .collect();
    if let Some(tokens) = value.get("phone_number_tokens").and_then(serde_json::Value::as_object) {
        values.extend(tokens.values().filter_map(serde_json::Value::as_str));
    }
    note_secrets(values);
}
