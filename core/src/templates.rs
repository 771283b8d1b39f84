//! The template registry's rules, pure: what the four template webhooks and Meta's template list
//! say about a template (status, category, quality, parameter format and counts), what a send must
//! match, and what Meta's send errors say about a template. The event processor and `wa templates
//! pull` record; the sender checks with [`check_send`] before any Graph call.

use serde_json::Value;

/// What the registry knows of one (name, language).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateFacts {
    /// APPROVED, PENDING, REJECTED, PAUSED, DISABLED, … (and MISSING after a 132001).
    pub status: Option<String>,
    /// marketing, utility, authentication (lowercase).
    pub category: Option<String>,
    /// GREEN, YELLOW, RED, UNKNOWN.
    pub quality: Option<String>,
    /// positional or named.
    pub parameter_format: Option<String>,
    /// How many parameters the body takes.
    pub body_params: Option<u32>,
    /// How many parameters a text header takes.
    pub header_params: Option<u32>,
}

/// A change to record: only the fields given are written.
pub type TemplateUpdate = TemplateFacts;

/// Counts the distinct parameters of a text (`{{1}}`, `{{name}}`).
#[must_use]
pub fn count_params(text: &str) -> u32 {
    let mut seen: Vec<String> = Vec::new();
    for param in crate::template_lint::params(text) {
        let name = param.inner.trim().to_owned();
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    u32::try_from(seen.len()).unwrap_or(u32::MAX)
}

/// The shape of a template's components (create payload, or an item of Meta's list).
#[must_use]
pub fn shape(template: &Value) -> TemplateUpdate {
    let components = template.get("components").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let text_of = |kind: &str| {
        components
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(kind)))
            .and_then(|c| c.get("text").and_then(Value::as_str))
    };
    TemplateUpdate {
        status: template.get("status").and_then(Value::as_str).map(str::to_ascii_uppercase),
        category: template.get("category").and_then(Value::as_str).map(str::to_ascii_lowercase),
        quality: template.pointer("/quality_score/score").and_then(Value::as_str).map(str::to_owned),
        parameter_format: Some(
            template.get("parameter_format").and_then(Value::as_str).unwrap_or("positional").to_ascii_lowercase(),
        ),
        body_params: text_of("BODY").map(count_params),
        header_params: Some(text_of("HEADER").map_or(0, count_params)),
    }
}

/// What a template webhook says: (name, language, what to record). `None` for other changes.
#[must_use]
pub fn from_webhook(field: &str, value: &Value) -> Option<(String, String, TemplateUpdate)> {
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let name = text("message_template_name")?.to_owned();
    let language = text("message_template_language").unwrap_or("*").to_owned();
    let mut update = TemplateUpdate::default();
    match field {
        "message_template_status_update" => {
            update.status = text("event").map(str::to_ascii_uppercase);
            update.category = text("message_template_category").map(str::to_ascii_lowercase);
        }
        "message_template_quality_update" => update.quality = text("new_quality_score").map(str::to_owned),
        "template_category_update" => update.category = text("new_category").map(str::to_ascii_lowercase),
        "message_template_components_update" => {
            update.body_params = text("message_template_element").map(count_params);
            update.header_params = Some(text("message_template_title").map_or(0, count_params));
        }
        _ => return None,
    }
    Some((name, language, update))
}

/// What Meta's send error says about the template: 132001 (missing or not approved in that
/// language), 132015 (paused), 132016 (disabled).
#[must_use]
pub fn status_after_error(code: i64) -> Option<&'static str> {
    match code {
        132_001 => Some("MISSING"),
        132_015 => Some("PAUSED"),
        132_016 => Some("DISABLED"),
        _ => None,
    }
}

/// The (name, language) of a template send.
#[must_use]
pub fn template_of(message: &serde_json::Map<String, Value>) -> Option<(&str, &str)> {
    let template = message.get("template")?;
    Some((
        template.get("name").and_then(Value::as_str)?,
        template.pointer("/language/code").and_then(Value::as_str).unwrap_or_default(),
    ))
}

/// The parameters a template send gives: (body, header, named).
fn given(message: &serde_json::Map<String, Value>) -> (u32, u32, bool) {
    let components = message.get("template").and_then(|t| t.get("components")).and_then(Value::as_array);
    let mut counts = (0u32, 0u32, false);
    for component in components.map_or(&[][..], Vec::as_slice) {
        let parameters = component.get("parameters").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        let named = parameters.iter().any(|p| p.get("parameter_name").is_some());
        counts.2 |= named;
        let n = u32::try_from(parameters.len()).unwrap_or(u32::MAX);
        match component.get("type").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            Some("body") => counts.0 += n,
            Some("header") if parameters.iter().all(|p| p.get("type").and_then(Value::as_str) == Some("text")) => {
                counts.1 += n;
            }
            _ => {}
        }
    }
    counts
}

/// Whether a template send may go: `Err(reason)` ends it with a failed outcome and no Graph call.
/// `refuse_unknown`: a template the registry has never seen is refused (else sent; Meta answers
/// 132001 if it does not exist).
pub fn check_send(
    message: &serde_json::Map<String, Value>,
    facts: Option<&TemplateFacts>,
    refuse_unknown: bool,
) -> Result<(), String> {
    let Some((name, language)) = template_of(message) else { return Ok(()) };
    let Some(facts) = facts else {
        return if refuse_unknown {
            Err(format!("template_unknown: {name} ({language}) is not in the template registry"))
        } else {
            Ok(())
        };
    };
    if let Some(status) = facts.status.as_deref().filter(|s| !matches!(*s, "APPROVED" | "REINSTATED" | "UNPAUSE")) {
        return Err(format!("template_not_approved: {name} ({language}) is {status}"));
    }
    let (body, header, named) = given(message);
    if let Some(expected) = facts.body_params.filter(|e| *e != body) {
        return Err(format!(
            "template_parameters: {name} ({language}) takes {expected} body parameter(s), the request gives {body}"
        ));
    }
    if let Some(expected) = facts.header_params.filter(|e| *e != header && header > 0) {
        return Err(format!(
            "template_parameters: {name} ({language}) takes {expected} header parameter(s), the request gives {header}"
        ));
    }
    let format = facts.parameter_format.as_deref().unwrap_or("positional");
    if body + header > 0 && (format == "named") != named {
        return Err(format!(
            "template_parameters: {name} ({language}) takes {format} parameters, the request gives {}",
            if named { "named ones" } else { "positional ones" }
        ));
    }
    Ok(())
}

/// What the registry knows of a template: (name, language), else (name, any language).
pub async fn registered<C: crate::ports::ConversationStore>(
    store: &C,
    name: &str,
    language: &str,
) -> Result<Option<TemplateFacts>, crate::ports::StoreError> {
    match store.template(name, language).await? {
        Some(facts) => Ok(Some(facts)),
        None => store.template(name, "*").await,
    }
}

/// A template's learned category: the registry's ([`registered`]), else the one Meta's template
/// webhooks named for the name in any language.
pub async fn learned_category<C: crate::ports::ConversationStore>(
    store: &C,
    name: &str,
    language: &str,
) -> Result<Option<String>, crate::ports::StoreError> {
    match registered(store, name, language).await?.and_then(|f| f.category) {
        Some(category) => Ok(Some(category)),
        None => store.template_category(name, "*").await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn send(parameters: Value) -> serde_json::Map<String, Value> {
        json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": parameters}]}})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn sends_checked_against_the_registry_as_a_table() {
        let approved = TemplateFacts {
            status: Some("APPROVED".into()),
            category: Some("utility".into()),
            parameter_format: Some("positional".into()),
            body_params: Some(2),
            header_params: Some(0),
            ..TemplateFacts::default()
        };
        let two = json!([{"type": "text", "text": "Ana"}, {"type": "text", "text": "42"}]);
        let one = json!([{"type": "text", "text": "Ana"}]);
        let named = json!([{"type": "text", "parameter_name": "a", "text": "Ana"}, {"type": "text", "parameter_name": "b", "text": "42"}]);
        let status = |s: &str| TemplateFacts { status: Some(s.into()), ..approved.clone() };
        /// (case, parameters, registry facts, refuse unknown, the refusal's reason prefix)
        type Case = (&'static str, Value, Option<TemplateFacts>, bool, Option<&'static str>);
        let table: Vec<Case> = vec![
            ("approved, right count", two.clone(), Some(approved.clone()), false, None),
            ("wrong count", one.clone(), Some(approved.clone()), false, Some("template_parameters")),
            ("named to positional", named.clone(), Some(approved.clone()), false, Some("template_parameters")),
            ("paused", two.clone(), Some(status("PAUSED")), false, Some("template_not_approved")),
            ("disabled", two.clone(), Some(status("DISABLED")), false, Some("template_not_approved")),
            ("rejected", two.clone(), Some(status("REJECTED")), false, Some("template_not_approved")),
            ("pending", two.clone(), Some(status("PENDING")), false, Some("template_not_approved")),
            ("missing after 132001", two.clone(), Some(status("MISSING")), false, Some("template_not_approved")),
            ("unknown, sent", two.clone(), None, false, None),
            ("unknown, refused", two.clone(), None, true, Some("template_unknown")),
            (
                "status unknown, shape known",
                two.clone(),
                Some(TemplateFacts { status: None, ..approved.clone() }),
                false,
                None,
            ),
        ];
        for (name, parameters, facts, refuse, expected) in table {
            let result = check_send(&send(parameters), facts.as_ref(), refuse);
            assert_eq!(result.as_ref().err().map(|e| e.split(':').next().unwrap()), expected, "{name}: {result:?}");
        }
        let text = json!({"type": "text", "text": {"body": "x"}});
        assert_eq!(check_send(text.as_object().unwrap(), None, true), Ok(()), "not a template");
    }

    #[test]
    fn the_webhooks_and_the_list_fill_the_registry() {
        let (name, language, update) = from_webhook(
            "message_template_status_update",
            &json!({"event": "APPROVED", "message_template_name": "order_update", "message_template_language": "en_US", "message_template_category": "UTILITY"}),
        )
        .unwrap();
        assert_eq!((name.as_str(), language.as_str()), ("order_update", "en_US"));
        assert_eq!((update.status.as_deref(), update.category.as_deref()), (Some("APPROVED"), Some("utility")));
        let (_, _, quality) = from_webhook(
            "message_template_quality_update",
            &json!({"new_quality_score": "YELLOW", "message_template_name": "w", "message_template_language": "en"}),
        )
        .unwrap();
        assert_eq!(quality.quality.as_deref(), Some("YELLOW"));
        let (_, _, components) = from_webhook("message_template_components_update", &json!({"message_template_name": "w", "message_template_language": "en", "message_template_element": "Hi {{1}}, {{2}} and {{1}} again."})).unwrap();
        assert_eq!(components.body_params, Some(2));
        assert!(from_webhook("account_update", &json!({"message_template_name": "w"})).is_none());
        let listed = shape(&json!({"name": "order_update", "status": "approved", "category": "UTILITY",
            "components": [{"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"}, {"type": "BODY", "text": "Hi {{1}}, order {{2}}."}]}));
        assert_eq!(
            (listed.body_params, listed.header_params, listed.status.as_deref()),
            (Some(2), Some(1), Some("APPROVED"))
        );
        assert_eq!(status_after_error(132_015), Some("PAUSED"));
        assert_eq!(status_after_error(131_026), None);
    }
}
