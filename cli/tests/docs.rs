//! The docs stay true where a program can tell: every `wa` command and flag the README and
//! `docs/` show exists (`wa … --help`), every environment variable the code reads is documented,
//! and every file the docs link to (schemas included) exists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const WA: &str = env!("CARGO_BIN_EXE_wa");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and docs/*.md: (path, text).
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

fn help(path: &[&str]) -> String {
    let out = Command::new(WA).args(path).arg("--help").output().unwrap();
    assert!(out.status.success(), "wa {} --help failed: {}", path.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommands a `--help` lists.
fn subcommands(help: &str) -> BTreeSet<String> {
    help.split("Commands:")
        .nth(1)
        .map(|rest| rest.split("\n\n").next().unwrap_or_default())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Every `wa …` command written in the docs: (command path, flags).
fn commands(text: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("wa ") {
            let before = rest[..at].chars().last();
            let tail = &rest[at + 3..];
            rest = tail;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/') {
                continue;
            }
            // The command ends at a code span's end, a table cell or a comment.
            let end = tail.find(['`', '|', '#', '(', ')', ';', ',']).unwrap_or(tail.len());
            let words: Vec<&str> = tail[..end].split_whitespace().collect();
            let path: Vec<String> = words
                .iter()
                .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-'))
                .take(2)
                .map(|w| (*w).to_owned())
                .collect();
            let flags: Vec<String> = words
                .iter()
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| w.trim_end_matches(['.', ':', ']', '"', '\'']).split('=').next().unwrap().to_owned())
                .collect();
            if !path.is_empty() {
                out.push((path, flags));
            }
        }
    }
    out
}

#[test]
fn every_wa_command_and_flag_the_docs_show_exists() {
    let top = subcommands(&help(&[]));
    assert!(top.contains("dev") && top.contains("templates"), "{top:?}");
    let mut checked = 0;
    for (path, text) in documents() {
        for (words, flags) in commands(&text) {
            // Only commands of `wa` (prose such as "wa dev's simulator" is a command too; other
            // words after "wa " are not commands and are skipped).
            if !top.contains(&words[0]) {
                continue;
            }
            let mut command = vec![words[0].as_str()];
            if let Some(second) = words.get(1)
                && subcommands(&help(&command)).contains(second)
            {
                command.push(second);
            }
            let usage = help(&command);
            for flag in &flags {
                assert!(
                    usage.contains(&format!("{flag} "))
                        || usage.contains(&format!("{flag}\n"))
                        || usage.contains(&format!("{flag} <")),
                    "{}: `wa {} {flag}`: no such flag in `wa {} --help`",
                    path.display(),
                    command.join(" "),
                    command.join(" ")
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "the docs show at least twenty flags ({checked} checked)");
}

#[test]
fn every_environment_variable_the_code_reads_is_documented() {
    let docs: String = documents().into_iter().map(|(_, t)| t).collect();
    let mut names = BTreeSet::new();
    let sources = [
        "infra/src/config.rs",
        "functions/media-fetcher/src/main.rs",
        "functions/event-processor/src/main.rs",
        "functions/sender/src/main.rs",
        "functions/secret-rotation/src/main.rs",
        "functions/token-watchdog/src/main.rs",
        "functions/webhook-ingest/src/main.rs",
        "functions/webhook-verify/src/main.rs",
        "cli/src/main.rs",
        "infra/src/tls.rs",
    ];
    for source in sources {
        let text = std::fs::read_to_string(root().join(source)).unwrap();
        for marker in ["pub const ", "env::var(\"", "env = \""] {
            for piece in text.split(marker).skip(1) {
                let candidate = if marker == "pub const " {
                    // `pub const NAME: &str = "NAME";` — the value.
                    piece.split_once("&str = \"").map(|(_, v)| v.split('"').next().unwrap_or_default())
                } else {
                    piece.split('"').next()
                };
                if let Some(name) = candidate.filter(|n| {
                    n.len() > 2 && n.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                }) {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    assert!(names.len() >= 20, "{names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !docs.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "environment variables the code reads but the docs do not name: {missing:?}");
}

#[test]
fn every_file_the_docs_link_to_exists() {
    let mut checked = 0;
    for (path, text) in documents() {
        let base = path.parent().unwrap().to_path_buf();
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap_or_default();
            if target.starts_with("http") || target.starts_with('#') || target.is_empty() {
                continue;
            }
            let file = target.split('#').next().unwrap();
            assert!(base.join(file).exists(), "{}: the link {target} leads nowhere", path.display());
            checked += 1;
        }
        for piece in text.split("schemas/").skip(1) {
            let name: String =
                piece.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')).collect();
            let name = name.trim_end_matches('.');
            if name.ends_with(".json") {
                assert!(
                    root().join("schemas").join(name).exists(),
                    "{}: schemas/{name} does not exist",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked}");
}
