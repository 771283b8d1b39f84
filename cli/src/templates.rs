//! `wa templates lint PATH…`: templates as code (files holding Meta's create payload, JSON or
//! YAML; one template or a list of them; directories are read for `.json`, `.yaml` and `.yml`)
//! checked with [`wa_core::template_lint`]. One line per finding, naming the file, the template,
//! the rule, the place and what to change; exit 1 when any error was found (warnings alone: 0), so
//! that a producer team's CI can run it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wa_core::template_lint::{Severity, lint};

/// The files under `paths` (directories read one level deep, sorted).
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// A file's templates: JSON, else YAML; one object or a list.
fn templates(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
    let value: Value = if yaml {
        serde_saphyr::from_str(&text).map_err(|e| format!("{} is not YAML: {e}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?
    };
    Ok(match value {
        Value::Array(list) => list,
        other => vec![other],
    })
}

/// Lints every template of `paths`: the report, and whether any error was found.
pub fn lint_paths(paths: &[PathBuf]) -> Result<(String, bool), String> {
    let mut report = String::new();
    let (mut errors, mut warnings, mut count) = (0, 0, 0);
    for path in files(paths)? {
        for template in templates(&path)? {
            count += 1;
            let name = template.get("name").and_then(Value::as_str).unwrap_or("(no name)").to_owned();
            for finding in lint(&template) {
                let (label, heuristic) = match finding.severity {
                    Severity::Error => ("error", ""),
                    Severity::Warning if finding.heuristic => ("warning", " (heuristic)"),
                    Severity::Warning => ("warning", ""),
                };
                if finding.severity == Severity::Error {
                    errors += 1;
                } else {
                    warnings += 1;
                }
                let _ = writeln!(
                    report,
                    "{}: {name}: {label} {}{heuristic} at {}: {}",
                    path.display(),
                    finding.rule,
                    finding.place,
                    finding.message
                );
            }
        }
    }
    let _ = writeln!(report, "{count} template(s): {errors} error(s), {warnings} warning(s)");
    Ok((report, errors > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_json_and_yaml_are_linted() {
        let dir = std::env::temp_dir().join(format!("wa-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("good.yaml"),
            "name: order_update\nlanguage: en_US\ncategory: UTILITY\ncomponents:\n  - type: BODY\n    text: \"Hi {{1}}, your order ships today.\"\n    example:\n      body_text: [[\"Pablo\"]]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("bad.json"),
            r#"[{"name": "Promo!", "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "{{1}} big sale"}]}]"#,
        )
        .unwrap();
        let (report, failed) = lint_paths(std::slice::from_ref(&dir)).unwrap();
        assert!(failed, "{report}");
        assert!(report.contains("bad.json: Promo!: error name.format at name"), "{report}");
        assert!(report.contains("error body.parameter.leading"), "{report}");
        assert!(report.contains("warning house.marketing.opt_out (heuristic)"), "{report}");
        assert!(!report.contains("good.yaml"), "the good template is clean: {report}");
        assert!(report.ends_with("2 template(s): 3 error(s), 1 warning(s)\n"), "{report}");
        let (_, failed) = lint_paths(&[dir.join("good.yaml")]).unwrap();
        assert!(!failed);
        std::fs::write(dir.join("broken.yaml"), "name: [unclosed").unwrap();
        assert!(lint_paths(&[dir.join("broken.yaml")]).unwrap_err().contains("is not YAML"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
