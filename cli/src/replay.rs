//! `wa replay`: posts payload files to a webhook URL, each signed with the app secret as Meta
//! signs it (`X-Hub-Signature-256` over the exact bytes of the file).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The payload files: `path` itself, or the `.json` files of a directory, sorted.
pub fn payload_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no .json payload in {}", path.display()));
    }
    Ok(files)
}

/// Posts every payload; the report has one line per file; true when every one got 200.
pub async fn replay(url: &str, from: &Path, app_secret: &str) -> Result<(String, bool), String> {
    let files = payload_files(from)?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut report = String::new();
    let mut all_ok = true;
    for file in &files {
        let body = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let signature = wa_core::signature::sign(app_secret.as_bytes(), &body);
        let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let answer = http
            .post(url)
            .header("content-type", "application/json")
            .header(wa_core::signature::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                all_ok &= status == 200;
                let _ = writeln!(report, "{status} {name}");
            }
            Err(error) => {
                all_ok = false;
                let _ = writeln!(report, "--- {name}: {}", error.without_url());
            }
        }
    }
    let _ = writeln!(report, "{} payloads posted to {url}", files.len());
    Ok((report, all_ok))
}
