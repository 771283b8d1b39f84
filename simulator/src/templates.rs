//! The template API as `reference/CLOUD_API_2026.md` §3 describes it, with review rules of its own:
//! `POST /{waba-id}/message_templates` → PENDING, then, after `SimConfig::template_review_delay`,
//! APPROVED or REJECTED (with `rejection_info`) announced by a signed
//! `message_template_status_update` webhook; `GET` lists with paging (`limit`, `after`); `POST
//! /{template-id}` edits (APPROVED, REJECTED or PAUSED only; an approved one once a day); `DELETE`
//! by name (every language) or by `hsm_id`. Sends of a template the simulator knows are checked:
//! not approved → 132001, paused → 132015, disabled → 132016, the wrong parameter count → 132000.
//! `POST /_sim/templates/{name}/{language}` sets a status (`{"event": "PAUSED"}`) and announces it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::{Shared, lock, meta_error, respond};

/// One template the simulator holds.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) language: String,
    pub(crate) status: String,
    pub(crate) category: String,
    pub(crate) parameter_format: String,
    pub(crate) components: Value,
    pub(crate) edited_at: Option<Instant>,
}

impl Template {
    fn json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "language": self.language, "status": self.status,
               "category": self.category, "parameter_format": self.parameter_format.to_ascii_uppercase(),
               "components": self.components})
    }

    fn body_params(&self) -> usize {
        self.components
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("BODY")))
            .and_then(|c| c.get("text").and_then(Value::as_str))
            .map_or(0, |text| {
                let mut names = Vec::new();
                let mut rest = text;
                while let Some(open) = rest.find("{{") {
                    let Some(close) = rest[open..].find("}}") else { break };
                    let name = &rest[open + 2..open + close];
                    if !names.contains(&name) {
                        names.push(name);
                    }
                    rest = &rest[open + close + 2..];
                }
                names.len()
            })
    }
}

/// The simulator's review: why Meta would reject `payload`, if it would (its own reading of
/// Meta's rules: name, one body, no parameter first, last or side by side, lengths).
fn review(payload: &Value) -> Option<(&'static str, String)> {
    let name = payload.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty()
        || name.len() > 512
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Some(("INVALID_FORMAT", "Template names use lowercase letters, digits and underscores.".into()));
    }
    let components = payload.get("components").and_then(Value::as_array).cloned().unwrap_or_default();
    let of = |kind: &str| {
        components
            .iter()
            .filter(|c| c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(kind)))
            .filter_map(|c| c.get("text").and_then(Value::as_str).map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let bodies = of("BODY");
    let [body] = bodies.as_slice() else {
        return Some(("INVALID_FORMAT", "A template has exactly one body.".into()));
    };
    let trimmed = body.trim();
    if trimmed.starts_with("{{") || trimmed.ends_with("}}") {
        return Some(("INVALID_FORMAT", "Variables can't be at the start or end of the template.".into()));
    }
    let squeezed: String = body.split_whitespace().collect();
    if squeezed.contains("}}{{") {
        return Some((
            "INVALID_FORMAT",
            "Add text between {{1}} and {{2}}: variables can't be next to each other.".into(),
        ));
    }
    if body.chars().count() > 1024 || of("HEADER").iter().chain(of("FOOTER").iter()).any(|t| t.chars().count() > 60) {
        return Some(("INVALID_FORMAT", "A component is over its character limit.".into()));
    }
    None
}

fn new_id(shared: &Shared) -> String {
    let serial = shared.next_id.fetch_add(1, Ordering::Relaxed);
    format!("{}{serial:09}", 1_600_000 + shared.instance % 100_000)
}

/// Posts a `message_template_status_update` for `template`.
async fn announce(shared: &Shared, template: &Template, reason: Option<(&str, String)>) {
    let config = lock(&shared.config).clone();
    let Some(url) = config.webhook_url.clone() else { return };
    let mut value = json!({"event": template.status, "message_template_id": template.id.parse::<u64>().unwrap_or(0),
        "message_template_name": template.name, "message_template_language": template.language,
        "message_template_category": template.category, "reason": null});
    if let Some((reason, recommendation)) = reason {
        value["reason"] = json!(reason);
        value["rejection_info"] = json!({"reason": reason, "recommendation": recommendation});
    }
    let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": config.waba_id, "time": crate::admin::now_s(),
        "changes": [{"field": "message_template_status_update", "value": value}]}]});
    crate::post_webhook(shared, &config, &url, &payload).await;
}

/// `POST /{version}/{waba-id}/message_templates`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !crate::media::bearer_ok(&shared, &headers) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return respond(400, meta_error(100, "Invalid parameter", Some("the body is not JSON"), trace));
    };
    let text = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (name, language, category) = (text("name"), text("language"), text("category").to_ascii_uppercase());
    if language.is_empty() || !matches!(category.as_str(), "MARKETING" | "UTILITY" | "AUTHENTICATION") {
        return respond(400, meta_error(100, "Invalid parameter", Some("language and a category are required"), trace));
    }
    if payload.get("allow_category_change").is_some() {
        return respond(
            400,
            meta_error(100, "Invalid parameter", Some("allow_category_change is no longer supported"), trace),
        );
    }
    let exists = lock(&shared.templates).values().any(|t| t.name == name && t.language == language);
    if exists {
        let mut error = meta_error(100, "Invalid parameter", Some("Content in this language already exists"), trace);
        error["error"]["error_subcode"] = json!(2_388_024);
        return respond(400, error);
    }
    let template = Template {
        id: new_id(&shared),
        name,
        language,
        status: "PENDING".into(),
        category: category.clone(),
        parameter_format: payload
            .get("parameter_format")
            .and_then(Value::as_str)
            .unwrap_or("positional")
            .to_ascii_lowercase(),
        components: payload.get("components").cloned().unwrap_or(Value::Array(Vec::new())),
        edited_at: None,
    };
    lock(&shared.templates).insert(template.id.clone(), template.clone());
    let verdict = review(&payload);
    let delay = lock(&shared.config).template_review_delay;
    let shared_for_review = shared.clone();
    let id = template.id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let reviewed = {
            let mut templates = lock(&shared_for_review.templates);
            let Some(stored) = templates.get_mut(&id) else { return };
            stored.status = if verdict.is_some() { "REJECTED".into() } else { "APPROVED".into() };
            stored.clone()
        };
        announce(&shared_for_review, &reviewed, verdict).await;
    });
    respond(200, json!({"id": template.id, "status": "PENDING", "category": category}))
}

/// `GET /{version}/{waba-id}/message_templates?name=&limit=&after=`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !crate::media::bearer_ok(&shared, &headers) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let mut all: Vec<Template> = lock(&shared.templates).values().cloned().collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(name) = query.get("name") {
        all.retain(|t| &t.name == name);
    }
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100);
    let start =
        query.get("after").and_then(|after| all.iter().position(|t| &t.id == after).map(|i| i + 1)).unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(start).take(limit).map(Template::json).collect();
    let mut paging = json!({"cursors": {"before": all.get(start).map(|t| t.id.clone()), "after": all.get(start + page.len().saturating_sub(1)).map(|t| t.id.clone())}});
    if start + page.len() < all.len() {
        paging["next"] = json!("more");
    }
    respond(200, json!({"data": page, "paging": paging}))
}

/// `DELETE /{version}/{waba-id}/message_templates?name=X[&hsm_id=ID]`.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !crate::media::bearer_ok(&shared, &headers) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let Some(name) = query.get("name") else {
        return respond(400, meta_error(100, "Invalid parameter", Some("name is required"), trace));
    };
    let mut templates = lock(&shared.templates);
    let before = templates.len();
    templates
        .retain(|id, t| !(t.name == *name && query.get("hsm_id").is_none_or(|h| h == id) && t.status != "DISABLED"));
    if templates.len() == before {
        return respond(400, meta_error(100, "Invalid parameter", Some("no such template (or it is disabled)"), trace));
    }
    respond(200, json!({"success": true}))
}

/// `POST /{version}/{template-id}`: an edit of components or category.
pub(crate) async fn edit(shared: &Shared, id: &str, body: &[u8]) -> Option<Response> {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut templates = lock(&shared.templates);
    let template = templates.get_mut(id)?;
    if !matches!(template.status.as_str(), "APPROVED" | "REJECTED" | "PAUSED") {
        return Some(respond(
            400,
            meta_error(
                100,
                "Invalid parameter",
                Some(&format!("a {} template cannot be edited", template.status)),
                trace,
            ),
        ));
    }
    if template.status == "APPROVED" && template.edited_at.is_some_and(|at| at.elapsed() < Duration::from_secs(86_400))
    {
        return Some(respond(
            400,
            meta_error(
                100,
                "Invalid parameter",
                Some("an approved template can be edited once in 24 hours and 10 times in 30 days"),
                trace,
            ),
        ));
    }
    if let Some(components) = payload.get("components") {
        template.components = components.clone();
    }
    if let Some(category) = payload.get("category").and_then(Value::as_str) {
        if template.status == "APPROVED" {
            return Some(respond(
                400,
                meta_error(100, "Invalid parameter", Some("an approved template's category cannot change"), trace),
            ));
        }
        template.category = category.to_ascii_uppercase();
    }
    template.edited_at = Some(Instant::now());
    Some(respond(200, json!({"success": true})))
}

/// `POST /_sim/templates/{name}/{language}` with `{"event": "PAUSED"}`: the status changes and is
/// announced.
pub(crate) async fn set_status(
    State(shared): State<Arc<Shared>>,
    Path((name, language)): Path<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let event = body.get("event").and_then(Value::as_str).unwrap_or("APPROVED").to_ascii_uppercase();
    let changed = {
        let mut templates = lock(&shared.templates);
        templates.values_mut().find(|t| t.name == name && t.language == language).map(|t| {
            t.status.clone_from(&event);
            t.clone()
        })
    };
    match changed {
        Some(template) => {
            announce(&shared, &template, None).await;
            respond(200, json!({"id": template.id, "status": event}))
        }
        None => respond(404, json!({"error": "no such template"})),
    }
}

/// A send's template, checked when the simulator knows it: `Err(code)` as Meta would answer.
pub(crate) fn check_send(shared: &Shared, body: &serde_json::Map<String, Value>) -> Result<(), i64> {
    let Some(template) = body.get("template") else { return Ok(()) };
    let name = template.get("name").and_then(Value::as_str).unwrap_or_default();
    let language = template.pointer("/language/code").and_then(Value::as_str).unwrap_or_default();
    let known = lock(&shared.templates).values().find(|t| t.name == name && t.language == language).cloned();
    let Some(known) = known else {
        let any_language = lock(&shared.templates).values().any(|t| t.name == name);
        return if any_language { Err(132_001) } else { Ok(()) };
    };
    match known.status.as_str() {
        "APPROVED" | "REINSTATED" => {}
        "PAUSED" => return Err(132_015),
        "DISABLED" => return Err(132_016),
        _ => return Err(132_001),
    }
    let given: usize = template
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("body")))
        .map(|c| c.get("parameters").and_then(Value::as_array).map_or(0, Vec::len))
        .sum();
    if given != known.body_params() {
        return Err(132_000);
    }
    Ok(())
}
