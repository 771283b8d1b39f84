//! The simulator's own reading of Meta's send rules: what `POST /{phone-number-id}/messages`
//! refuses, with Meta's codes (100 invalid parameter, 131008 required parameter missing, 131009
//! parameter value not valid). Written from Meta's documentation (`reference/CLOUD_API.md` §(b),
//! `reference/CLOUD_API_2026.md`), independently of the pipeline's validator in `wa-core`: a test
//! oracle that shared the sender's code could not catch the sender's mistakes.
//!
//! Lengths are counted in Unicode characters, as Meta counts them.

use serde_json::{Map, Value};

/// A refusal: Meta's code and the details Meta puts in `error_data.details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Meta's code.
    pub code: i64,
    /// What is wrong, naming the parameter.
    pub details: String,
}

type Checked = Result<(), Refusal>;

fn missing(path: &str) -> Refusal {
    Refusal { code: 131_008, details: format!("Required parameter is missing: {path}") }
}

fn invalid(path: &str, why: &str) -> Refusal {
    Refusal { code: 131_009, details: format!("Parameter value is not valid: {path}: {why}") }
}

fn bad_parameter(why: &str) -> Refusal {
    Refusal { code: 100, details: format!("Invalid parameter: {why}") }
}

/// The string at `key` of `object`, if it is one.
fn string<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// The object at `key`, or a 131008 naming `path`.
fn object<'a>(parent: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a Map<String, Value>, Refusal> {
    match parent.get(key) {
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(invalid(path, "must be an object")),
        None => Err(missing(path)),
    }
}

/// A string of `min..=max` characters at `key` (absent is fine when `min` is 0).
fn text(parent: &Map<String, Value>, key: &str, path: &str, min: usize, max: usize) -> Checked {
    match parent.get(key) {
        None if min == 0 => Ok(()),
        None => Err(missing(path)),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n < min {
                Err(if n == 0 { missing(path) } else { invalid(path, &format!("at least {min} characters")) })
            } else if n > max {
                Err(invalid(path, &format!("at most {max} characters (got {n})")))
            } else {
                Ok(())
            }
        }
        Some(_) => Err(invalid(path, "must be a string")),
    }
}

/// A phone number as Meta takes it in `to`: digits, optionally with `+`, spaces, dashes or
/// parentheses, 7 to 15 digits.
fn phone_number(to: &str) -> bool {
    let digits = to.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits) && to.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
}

/// Content types with a content object of the same name.
const CONTENT_TYPES: [&str; 12] = [
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
    "order",
];

/// What a valid body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A read receipt (optionally with a typing indicator): answered `{"success": true}`.
    ReadReceipt,
    /// A message of this type.
    Message(String),
}

/// Checks a send body the way Meta does.
pub fn check(body: &Map<String, Value>) -> Result<Kind, Refusal> {
    if string(body, "messaging_product") != Some("whatsapp") {
        return Err(bad_parameter("messaging_product must be \"whatsapp\""));
    }
    if let Some(kind) = body.get("recipient_type")
        && !matches!(kind.as_str(), Some("individual" | "group"))
    {
        return Err(bad_parameter("recipient_type must be individual or group"));
    }
    text(body, "biz_opaque_callback_data", "biz_opaque_callback_data", 0, 512)?;
    if string(body, "status") == Some("read") {
        if string(body, "message_id").is_none() {
            return Err(missing("message_id"));
        }
        if let Some(indicator) = body.get("typing_indicator")
            && indicator.get("type").and_then(Value::as_str) != Some("text")
        {
            return Err(invalid("typing_indicator.type", "must be \"text\""));
        }
        return Ok(Kind::ReadReceipt);
    }
    match (body.get("to"), body.get("recipient")) {
        (None, None) => return Err(bad_parameter("to or recipient is required")),
        (Some(Value::String(to)), _) if !phone_number(to) => {
            return Err(bad_parameter("to must be a phone number"));
        }
        (Some(Value::String(_)), _) => {}
        (Some(_), _) => return Err(bad_parameter("to must be a string")),
        (None, Some(Value::String(recipient))) if crate::users::looks_like_bsuid(recipient) => {}
        (None, Some(_)) => return Err(bad_parameter("recipient must be a business-scoped user id")),
    }
    let kind = match body.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(bad_parameter("type must be a string")),
        // Without `type` Meta goes by the one content object given (its own examples do this).
        None => match CONTENT_TYPES.iter().filter(|t| body.contains_key(**t)).collect::<Vec<_>>()[..] {
            [only] => (*only).to_owned(),
            _ => return Err(missing("type")),
        },
    };
    if let Some(context) = body.get("context")
        && context.get("message_id").and_then(Value::as_str).is_none()
    {
        return Err(missing("context.message_id"));
    }
    match kind.as_str() {
        "text" => {
            let content = object(body, "text", "text")?;
            text(content, "body", "text.body", 1, 4096)?;
        }
        "image" | "audio" | "video" | "document" | "sticker" => media(body, &kind)?,
        "location" => {
            let location = object(body, "location", "location")?;
            for (key, limit) in [("latitude", 90.0), ("longitude", 180.0)] {
                let value = location.get(key).ok_or_else(|| missing(&format!("location.{key}")))?;
                let number = value.as_f64().or_else(|| value.as_str().and_then(|s| s.parse().ok()));
                if !number.is_some_and(|n: f64| n.abs() <= limit) {
                    return Err(invalid(&format!("location.{key}"), "not a coordinate"));
                }
            }
        }
        "contacts" => {
            if body.get("contacts").and_then(Value::as_array).is_none_or(Vec::is_empty) {
                return Err(missing("contacts"));
            }
        }
        "reaction" => {
            let reaction = object(body, "reaction", "reaction")?;
            if string(reaction, "message_id").is_none() {
                return Err(missing("reaction.message_id"));
            }
        }
        "interactive" => interactive(object(body, "interactive", "interactive")?)?,
        "template" => {
            let template = object(body, "template", "template")?;
            text(template, "name", "template.name", 1, 512)?;
            let language = object(template, "language", "template.language")?;
            if string(language, "code").is_none_or(str::is_empty) {
                return Err(missing("template.language.code"));
            }
        }
        "order" => {
            object(body, "order", "order")?;
        }
        other => return Err(bad_parameter(&format!("unknown message type {other:?}"))),
    }
    Ok(Kind::Message(kind))
}

fn media(body: &Map<String, Value>, kind: &str) -> Checked {
    let content = object(body, kind, kind)?;
    // Meta fetches a link when it delivers the message (a bad one fails later, in a status); its
    // own examples use placeholders such as "<http(s)://image-url>", so any non-empty text is taken.
    match (string(content, "id"), string(content, "link")) {
        (None, None) => return Err(missing(&format!("{kind}.id or {kind}.link"))),
        (None, Some("")) => return Err(missing(&format!("{kind}.link"))),
        _ => {}
    }
    text(content, "caption", &format!("{kind}.caption"), 0, 1024)
}

fn interactive(content: &Map<String, Value>) -> Checked {
    let kind = string(content, "type").ok_or_else(|| missing("interactive.type"))?;
    if let Some(header) = content.get("header").and_then(Value::as_object) {
        text(header, "text", "interactive.header.text", 0, 60)?;
        let media = string(header, "type").filter(|t| matches!(*t, "image" | "video" | "document"));
        if let Some(media) = media
            && header.get(media).and_then(|m| m.get("id")).is_some()
        {
            return Err(invalid(&format!("interactive.header.{media}"), "headers take a link, not a media id"));
        }
    }
    if let Some(body) = content.get("body").and_then(Value::as_object) {
        text(body, "text", "interactive.body.text", 0, 1024)?;
    }
    if let Some(footer) = content.get("footer").and_then(Value::as_object) {
        text(footer, "text", "interactive.footer.text", 0, 60)?;
    }
    let action = content.get("action").and_then(Value::as_object);
    match kind {
        "button" => {
            let buttons = action
                .and_then(|a| a.get("buttons"))
                .and_then(Value::as_array)
                .ok_or_else(|| missing("interactive.action.buttons"))?;
            if !(1..=3).contains(&buttons.len()) {
                return Err(invalid("interactive.action.buttons", "1 to 3 buttons"));
            }
            let mut seen_ids = Vec::new();
            let mut seen_titles = Vec::new();
            for button in buttons {
                let reply = button
                    .get("reply")
                    .and_then(Value::as_object)
                    .ok_or_else(|| missing("interactive.action.buttons.reply"))?;
                text(reply, "id", "interactive.action.buttons.reply.id", 1, 256)?;
                text(reply, "title", "interactive.action.buttons.reply.title", 1, 20)?;
                let id = string(reply, "id").unwrap_or_default();
                if id.trim() != id {
                    return Err(invalid("interactive.action.buttons.reply.id", "no leading or trailing spaces"));
                }
                let title = string(reply, "title").unwrap_or_default();
                if seen_ids.contains(&id) || seen_titles.contains(&title) {
                    return Err(invalid("interactive.action.buttons", "button ids and titles must be unique"));
                }
                seen_ids.push(id);
                seen_titles.push(title);
            }
        }
        "list" => {
            let action = action.ok_or_else(|| missing("interactive.action"))?;
            text(action, "button", "interactive.action.button", 1, 20)?;
            let sections = action
                .get("sections")
                .and_then(Value::as_array)
                .ok_or_else(|| missing("interactive.action.sections"))?;
            if !(1..=10).contains(&sections.len()) {
                return Err(invalid("interactive.action.sections", "1 to 10 sections"));
            }
            let mut row_ids = Vec::new();
            for section in sections.iter().filter_map(Value::as_object) {
                let min_title = usize::from(sections.len() > 1);
                text(section, "title", "interactive.action.sections.title", min_title, 24)?;
                for row in
                    section.get("rows").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object)
                {
                    text(row, "id", "interactive.action.sections.rows.id", 1, 200)?;
                    text(row, "title", "interactive.action.sections.rows.title", 1, 24)?;
                    text(row, "description", "interactive.action.sections.rows.description", 0, 72)?;
                    let id = string(row, "id").unwrap_or_default();
                    if row_ids.contains(&id) {
                        return Err(invalid("interactive.action.sections.rows.id", "row ids must be unique"));
                    }
                    row_ids.push(id);
                }
            }
            if !(1..=10).contains(&row_ids.len()) {
                return Err(invalid("interactive.action.sections.rows", "1 to 10 rows in all sections together"));
            }
        }
        "cta_url" => {
            let parameters = action
                .and_then(|a| a.get("parameters"))
                .and_then(Value::as_object)
                .ok_or_else(|| missing("interactive.action.parameters"))?;
            text(parameters, "display_text", "interactive.action.parameters.display_text", 1, 20)?;
            text(parameters, "url", "interactive.action.parameters.url", 1, 2000)?;
        }
        "flow"
        | "product"
        | "product_list"
        | "catalog_message"
        | "order_details"
        | "order_status"
        | "address_message"
        | "location_request_message"
        | "call_permission_request"
        | "carousel"
        | "voice_call" => {
            if action.is_none() {
                return Err(missing("interactive.action"));
            }
        }
        other => return Err(bad_parameter(&format!("unknown interactive type {other:?}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        let mut base = json!({"messaging_product": "whatsapp", "to": "16505551234"});
        for (k, v) in value.as_object().unwrap() {
            base[k] = v.clone();
        }
        base.as_object().unwrap().clone()
    }

    #[test]
    fn refusals_as_a_table() {
        let buttons = |n: usize| {
            let list: Vec<Value> = (0..n)
                .map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": format!("B{i}")}}))
                .collect();
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"}, "action": {"buttons": list}}})
        };
        let rows = |n: usize| {
            let rows: Vec<Value> = (0..n).map(|i| json!({"id": format!("r{i}"), "title": "Row"})).collect();
            json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"},
                "action": {"button": "Pick", "sections": [{"title": "A", "rows": rows[..n / 2]}, {"title": "B", "rows": rows[n / 2..]}]}}})
        };
        let table: Vec<(&str, Value, Option<i64>)> = vec![
            ("text", json!({"type": "text", "text": {"body": "hi"}}), None),
            ("4096 characters", json!({"type": "text", "text": {"body": "é".repeat(4096)}}), None),
            ("4097 characters", json!({"type": "text", "text": {"body": "x".repeat(4097)}}), Some(131_009)),
            ("no body", json!({"type": "text", "text": {}}), Some(131_008)),
            ("no type, one content", json!({"text": {"body": "hi"}}), None),
            ("unknown type", json!({"type": "hologram", "hologram": {}}), Some(100)),
            ("image without a source", json!({"type": "image", "image": {"caption": "x"}}), Some(131_008)),
            ("image with an empty link", json!({"type": "image", "image": {"link": ""}}), Some(131_008)),
            (
                "image caption of 1025",
                json!({"type": "image", "image": {"id": "1", "caption": "x".repeat(1025)}}),
                Some(131_009),
            ),
            ("3 buttons", buttons(3), None),
            ("4 buttons", buttons(4), Some(131_009)),
            ("10 rows over two sections", rows(10), None),
            ("11 rows over two sections", rows(11), Some(131_009)),
            (
                "a template",
                json!({"type": "template", "template": {"name": "hello", "language": {"code": "en_US"}}}),
                None,
            ),
            ("a template without language", json!({"type": "template", "template": {"name": "hello"}}), Some(131_008)),
            ("latitude 91", json!({"type": "location", "location": {"latitude": 91, "longitude": 0}}), Some(131_009)),
            (
                "a reply without message_id",
                json!({"type": "text", "text": {"body": "x"}, "context": {}}),
                Some(131_008),
            ),
            (
                "callback data of 513",
                json!({"type": "text", "text": {"body": "x"}, "biz_opaque_callback_data": "x".repeat(513)}),
                Some(131_009),
            ),
        ];
        for (name, value, expected) in table {
            assert_eq!(check(&body(value)).err().map(|r| r.code), expected, "{name}");
        }
    }

    #[test]
    fn recipients() {
        let text = json!({"type": "text", "text": {"body": "hi"}});
        let mut by_bsuid = body(text.clone());
        by_bsuid.remove("to");
        by_bsuid.insert("recipient".into(), json!("US.13491208655302741918"));
        assert!(check(&by_bsuid).is_ok());
        by_bsuid.insert("recipient".into(), json!("16505551234"));
        assert_eq!(check(&by_bsuid).unwrap_err().code, 100, "recipient is for BSUIDs");
        let mut short = body(text);
        short.insert("to".into(), json!("12"));
        assert_eq!(check(&short).unwrap_err().code, 100);
        let receipt = body(json!({"status": "read", "message_id": "wamid.1", "typing_indicator": {"type": "text"}}));
        assert_eq!(check(&receipt), Ok(Kind::ReadReceipt));
    }
}

#[cfg(test)]
mod spec_examples {
    use super::*;

    /// Meta's 50 send examples (its OpenAPI spec) pass Meta's rules as the simulator reads them.
    #[test]
    fn metas_own_examples_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/meta/send");
        let mut refused = Vec::new();
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mut body: Map<String, Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if body.contains_key("to") {
                body.insert("to".into(), Value::String("16505551234".into()));
            }
            count += 1;
            if let Err(refusal) = check(&body) {
                refused.push(format!("{}: {refusal:?}", path.display()));
            }
        }
        assert_eq!(count, 50);
        assert!(refused.is_empty(), "{refused:#?}");
    }
}
