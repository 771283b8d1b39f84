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

/// Where Meta's template API is: `{base}/{version}/{waba_id}/message_templates` with `token`.
pub struct TemplateApi {
    /// `https://graph.facebook.com`, or the simulator (`wa dev`'s: `http://127.0.0.1:8090`).
    pub base: String,
    /// The Graph API version.
    pub version: String,
    /// The WhatsApp Business Account.
    pub waba_id: String,
    /// A token allowed to manage its templates.
    pub token: String,
}

/// What Meta allows when an edit is refused.
const EDIT_LIMITS: &str = "Meta edits APPROVED, REJECTED or PAUSED templates only; an approved template at most once in \
24 hours and 10 times in 30 days, and never its category";

impl TemplateApi {
    fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base.trim_end_matches('/'), self.version)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {}", self.base, e.without_url()))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            let error = &body["error"];
            Err(format!(
                "Meta answered {}: code {} {}",
                status.as_u16(),
                error["code"],
                error["error_data"]["details"].as_str().or(error["message"].as_str()).unwrap_or_default()
            ))
        }
    }

    /// Every template of the WABA (all pages), or those named `name`.
    pub async fn list(&self, name: Option<&str>) -> Result<Vec<Value>, String> {
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1000 {
            let mut query = vec![("limit".to_owned(), "100".to_owned())];
            if let Some(name) = name {
                query.push(("name".into(), name.into()));
            }
            if let Some(after) = &after {
                query.push(("after".into(), after.clone()));
            }
            let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
            let page = self
                .call(http.get(format!("{}?{query}", self.url(&format!("{}/message_templates", self.waba_id)))))
                .await?;
            out.extend(page["data"].as_array().cloned().unwrap_or_default());
            if page["paging"].get("next").is_none() {
                return Ok(out);
            }
            after = page["paging"]["cursors"]["after"].as_str().map(str::to_owned);
        }
        Ok(out)
    }

    /// `wa templates push`: each template linted, then created, edited or left as it is (an
    /// unchanged template is not re-submitted); with `dry_run`, only what would change.
    pub async fn push(&self, paths: &[PathBuf], dry_run: bool) -> Result<(String, bool), String> {
        let http = reqwest::Client::new();
        let mut report = String::new();
        let mut failed = false;
        for path in files(paths)? {
            for template in templates(&path)? {
                let name = template.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let language = template.get("language").and_then(Value::as_str).unwrap_or_default().to_owned();
                let errors: Vec<String> = lint(&template)
                    .into_iter()
                    .filter(|f| f.severity == Severity::Error)
                    .map(|f| format!("{} at {}", f.rule, f.place))
                    .collect();
                if !errors.is_empty() {
                    failed = true;
                    let _ = writeln!(report, "{name} ({language}): not pushed, lint errors: {}", errors.join("; "));
                    continue;
                }
                let existing = self.list(Some(&name)).await?;
                let current = existing.iter().find(|t| t["language"].as_str() == Some(&language));
                let verdict = match current {
                    None if dry_run => "would create".to_owned(),
                    None => match self
                        .call(http.post(self.url(&format!("{}/message_templates", self.waba_id))).json(&template))
                        .await
                    {
                        Ok(answer) => format!(
                            "created: {} (id {})",
                            answer["status"].as_str().unwrap_or("?"),
                            answer["id"].as_str().unwrap_or("?")
                        ),
                        Err(error) => {
                            failed = true;
                            format!("not created: {error}")
                        }
                    },
                    Some(current) if same(current, &template) => "unchanged: not re-submitted".to_owned(),
                    Some(current) if dry_run => {
                        format!("would edit (now {})", current["status"].as_str().unwrap_or("?"))
                    }
                    Some(current) => {
                        let id = current["id"].as_str().unwrap_or_default();
                        match self
                            .call(
                                http.post(self.url(id))
                                    .json(&serde_json::json!({"components": template["components"]})),
                            )
                            .await
                        {
                            Ok(_) => "edited: Meta reviews it again".to_owned(),
                            Err(error) => {
                                failed = true;
                                format!("not edited: {error} ({EDIT_LIMITS})")
                            }
                        }
                    }
                };
                let _ = writeln!(report, "{name} ({language}): {verdict}");
            }
        }
        Ok((report, failed))
    }

    /// `wa templates pull DIR`: one file per template (`<name>.<language>.json`, the create payload).
    pub async fn pull(&self, dir: &Path) -> Result<String, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let all = self.list(None).await?;
        for template in &all {
            let name = template["name"].as_str().unwrap_or("unnamed");
            let language = template["language"].as_str().unwrap_or("xx");
            let file = serde_json::json!({"name": name, "language": language, "category": template["category"],
                "parameter_format": template["parameter_format"].as_str().map(str::to_ascii_lowercase), "components": template["components"]});
            let path = dir.join(format!("{name}.{language}.json"));
            let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
            std::fs::write(&path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(format!("{} template(s) written to {}\n", all.len(), dir.display()))
    }

    /// Records what Meta lists into a template registry (the state table, or the local stack's):
    /// status, category, quality, parameter format and counts of every template.
    pub async fn record<S: wa_core::ports::ConversationStore>(&self, store: &S) -> Result<String, String> {
        let all = self.list(None).await?;
        for template in &all {
            let name = template["name"].as_str().unwrap_or_default();
            let language = template["language"].as_str().unwrap_or_default();
            store
                .record_template(name, language, &wa_core::templates::shape(template))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(format!("{} template(s) recorded in the registry\n", all.len()))
    }

    /// `wa templates list` / `status`: name, language, status, category.
    pub async fn status(&self) -> Result<String, String> {
        let mut out = String::new();
        for t in self.list(None).await? {
            let _ = writeln!(
                out,
                "{} ({}): {} {}",
                t["name"].as_str().unwrap_or("?"),
                t["language"].as_str().unwrap_or("?"),
                t["status"].as_str().unwrap_or("?"),
                t["category"].as_str().unwrap_or("?")
            );
        }
        if out.is_empty() {
            out.push_str("no templates\n");
        }
        Ok(out)
    }

    /// `wa templates delete NAME [--language L]`: every language, or one.
    pub async fn delete(&self, name: &str, language: Option<&str>) -> Result<String, String> {
        let mut pairs = vec![("name", name.to_owned())];
        if let Some(language) = language {
            let existing = self.list(Some(name)).await?;
            let id = existing
                .iter()
                .find(|t| t["language"].as_str() == Some(language))
                .and_then(|t| t["id"].as_str())
                .ok_or_else(|| format!("no template {name} in {language}"))?;
            pairs.push(("hsm_id", id.to_owned()));
        }
        let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        self.call(
            reqwest::Client::new()
                .delete(format!("{}?{query}", self.url(&format!("{}/message_templates", self.waba_id)))),
        )
        .await?;
        Ok(format!("{name} deleted{}\n", language.map(|l| format!(" ({l})")).unwrap_or_default()))
    }
}

/// Whether Meta's copy is the file's: the same components (names of keys as Meta lists them,
/// compared case-insensitively for types) and category.
fn same(current: &Value, file: &Value) -> bool {
    fn normal(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if k == "type" || k == "format" {
                            Value::String(v.as_str().unwrap_or_default().to_ascii_uppercase())
                        } else {
                            normal(v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(list) => Value::Array(list.iter().map(normal).collect()),
            other => other.clone(),
        }
    }
    let category = |v: &Value| v["category"].as_str().unwrap_or_default().to_ascii_uppercase();
    normal(&current["components"]) == normal(&file["components"]) && category(current) == category(file)
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
