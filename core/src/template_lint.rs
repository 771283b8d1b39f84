//! Templates checked before Meta sees them: Meta's published rules (`reference/CLOUD_API_2026.md`
//! §3: name, lengths, parameters and their examples, placement, buttons) as errors, and house rules
//! as warnings (marketing carries opt-out wording, utility carries no promotion, the language
//! matches the text). Rules whose threshold Meta does not publish, and every wording rule, are
//! heuristics and say so. Input: Meta's create payload (`POST /{waba-id}/message_templates`).

use serde_json::Value;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Meta would reject the template: fix it before submitting.
    Error,
    /// A house rule or a heuristic: worth a look.
    Warning,
}

/// One broken rule: which, where, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// A stable rule id, e.g. `body.parameter.leading`.
    pub rule: &'static str,
    /// Where: `name`, `components[1] (BODY).text`, `components[3] (BUTTONS).buttons[0]`, ...
    pub place: String,
    /// What is wrong and what to change.
    pub message: String,
    /// The rule is a heuristic (Meta does not publish the threshold, or it is about wording).
    pub heuristic: bool,
}

fn error(findings: &mut Vec<Finding>, rule: &'static str, place: &str, message: String) {
    findings.push(Finding { severity: Severity::Error, rule, place: place.to_owned(), message, heuristic: false });
}

fn warning(findings: &mut Vec<Finding>, rule: &'static str, place: &str, message: String) {
    findings.push(Finding { severity: Severity::Warning, rule, place: place.to_owned(), message, heuristic: true });
}

/// A parameter as written in a text: `{{1}}` or `{{name}}`, with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    pub(crate) inner: String,
    start: usize,
    end: usize,
}

/// The parameters of a text, in order (also what [`crate::templates::count_params`] counts).
pub(crate) fn params(text: &str) -> Vec<Param> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{") {
        let start = rest + open;
        let Some(close) = text[start + 2..].find("}}") else { break };
        let end = start + 2 + close + 2;
        out.push(Param { inner: text[start + 2..end - 2].to_owned(), start, end });
        rest = end;
    }
    out
}

fn is_positional(inner: &str) -> bool {
    !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit())
}

fn is_named(inner: &str) -> bool {
    !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Checks the parameters of one text; returns their names in order of first appearance.
fn check_params(findings: &mut Vec<Finding>, text: &str, place: &str, named: bool) -> Vec<String> {
    let found = params(text);
    let mut names: Vec<String> = Vec::new();
    for param in &found {
        let inner = param.inner.trim();
        if inner != param.inner || !(is_positional(inner) || is_named(inner)) {
            error(
                findings,
                "parameter.format",
                place,
                format!(
                    "{{{{{}}}}} is not a parameter: write {{{{1}}}} or {{{{name}}}} (digits, or a-z and _)",
                    param.inner
                ),
            );
            continue;
        }
        if named && is_positional(inner) {
            error(
                findings,
                "parameter.mixed",
                place,
                format!("{{{{{inner}}}}} is positional but parameter_format is named"),
            );
        } else if !named && is_named(inner) {
            error(
                findings,
                "parameter.mixed",
                place,
                format!(
                    "{{{{{inner}}}}} is named: set \"parameter_format\": \"named\" or write {{{{1}}}}, {{{{2}}}}, …"
                ),
            );
        }
        if !names.contains(&inner.to_owned()) {
            names.push(inner.to_owned());
        } else if named {
            error(
                findings,
                "parameter.unique",
                place,
                format!("{{{{{inner}}}}} appears twice: give each value its own name"),
            );
        }
    }
    if !named {
        let expected: Vec<String> = (1..=names.len()).map(|n| n.to_string()).collect();
        if names.iter().all(|n| is_positional(n)) && names != expected {
            error(
                findings,
                "parameter.sequence",
                place,
                format!(
                    "parameters must run {{{{1}}}}, {{{{2}}}}, … in order with no gap; found {}",
                    names.iter().map(|n| format!("{{{{{n}}}}}")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    for pair in found.windows(2) {
        if text[pair[0].end..pair[1].start].trim().is_empty() {
            error(
                findings,
                "parameter.adjacent",
                place,
                format!(
                    "{{{{{}}}}} and {{{{{}}}}} stand side by side: put words between them",
                    pair[0].inner, pair[1].inner
                ),
            );
        }
    }
    names
}

/// The example values a component gives for its parameters, when it gives them.
fn examples(component: &Value, key: &str, named_key: &str) -> (Option<usize>, Vec<String>, bool) {
    let example = component.get("example");
    let flat_or_nested = example.and_then(|e| e.get(key));
    let (count, flat) = match flat_or_nested {
        Some(Value::Array(outer)) if outer.first().is_some_and(Value::is_array) => {
            (outer.first().and_then(Value::as_array).map(Vec::len), false)
        }
        Some(Value::Array(values)) => (Some(values.len()), true),
        Some(Value::String(_)) => (Some(1), false),
        _ => (None, false),
    };
    let named: Vec<String> = example
        .and_then(|e| e.get(named_key))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter().filter_map(|p| p.get("param_name").and_then(Value::as_str).map(str::to_owned)).collect()
        })
        .unwrap_or_default();
    (count, named, flat)
}

fn check_examples(
    findings: &mut Vec<Finding>,
    component: &Value,
    names: &[String],
    named: bool,
    place: &str,
    kind: &str,
) {
    if names.is_empty() {
        return;
    }
    let (key, named_key) = if kind == "HEADER" {
        ("header_text", "header_text_named_params")
    } else {
        ("body_text", "body_text_named_params")
    };
    let (count, named_examples, flat) = examples(component, key, named_key);
    if named {
        for name in names {
            if !named_examples.contains(name) {
                error(
                    findings,
                    "example.missing",
                    place,
                    format!(
                        "{{{{{name}}}}} has no example: add {{\"param_name\": \"{name}\", \"example\": \"…\"}} to example.{named_key}"
                    ),
                );
            }
        }
        return;
    }
    match count {
        None => error(
            findings,
            "example.missing",
            place,
            format!("{} parameter(s) and no example.{key}: give one example value for each", names.len()),
        ),
        Some(n) if n != names.len() => error(
            findings,
            "example.count",
            place,
            format!("{} parameter(s) but {n} example value(s) in example.{key}", names.len()),
        ),
        Some(_) if flat && kind == "BODY" => findings.push(Finding {
            severity: Severity::Warning,
            rule: "example.nesting",
            place: place.to_owned(),
            message: "example.body_text is flat: Meta's API takes it nested, [[\"a\", \"b\"]]".into(),
            heuristic: false,
        }),
        Some(_) => {}
    }
}

const MARKDOWN: [&str; 4] = ["*", "~", "```", "_"];

/// Words that mark a promotion (house rule for utility templates; heuristic).
const PROMOTION: [&str; 12] = [
    "sale",
    "discount",
    "% off",
    "offer",
    "promo",
    "coupon",
    "deal",
    "buy now",
    "limited time",
    "shop now",
    "cashback",
    "free gift",
];

/// Opt-out wording (house rule for marketing templates; heuristic).
const OPT_OUT: [&str; 9] = ["stop", "unsubscribe", "opt out", "opt-out", "optout", "no more", "parar", "baja", "sair"];

/// Languages written in Latin script (for the language-matches-text heuristic).
const LATIN: [&str; 14] = ["en", "es", "pt", "fr", "de", "it", "nl", "id", "ms", "tr", "pl", "sw", "ro", "vi"];
/// Languages not written in Latin script.
const NON_LATIN: [&str; 12] = ["hi", "ar", "ru", "zh", "ja", "ko", "he", "th", "bn", "ta", "te", "uk"];

/// Checks one template (Meta's create payload).
#[must_use]
pub fn lint(template: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let text = |key: &str| template.get(key).and_then(Value::as_str);
    match text("name") {
        None => error(&mut findings, "name.required", "name", "a template needs a name".into()),
        Some(name) => {
            if chars(name) > 512 {
                error(&mut findings, "name.length", "name", format!("{} characters, at most 512", chars(name)));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                error(&mut findings, "name.format", "name", format!("{name:?}: use a-z, 0-9 and _ only"));
            }
        }
    }
    let language = text("language").unwrap_or_default();
    if language.is_empty() {
        error(&mut findings, "language.required", "language", "give the language code, e.g. en_US".into());
    }
    let category = text("category").unwrap_or_default().to_ascii_uppercase();
    if !matches!(category.as_str(), "MARKETING" | "UTILITY" | "AUTHENTICATION") {
        error(
            &mut findings,
            "category.value",
            "category",
            format!("{category:?}: MARKETING, UTILITY or AUTHENTICATION"),
        );
    }
    if template.get("allow_category_change").is_some() {
        error(
            &mut findings,
            "category.allow_change",
            "allow_category_change",
            "Meta rejects allow_category_change since 2025-04-09: remove it".into(),
        );
    }
    let named = match text("parameter_format").map(str::to_ascii_lowercase).as_deref() {
        None | Some("positional") => false,
        Some("named") => true,
        Some(other) => {
            error(
                &mut findings,
                "parameter_format.value",
                "parameter_format",
                format!("{other:?}: positional or named"),
            );
            false
        }
    };
    let components = template.get("components").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let kind_of = |c: &Value| c.get("type").and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase();
    let bodies = components.iter().filter(|c| kind_of(c) == "BODY").count();
    if bodies != 1 {
        error(&mut findings, "body.count", "components", format!("exactly one BODY, found {bodies}"));
    }
    let mut all_text = String::new();
    let mut button_texts = Vec::new();
    for (i, component) in components.iter().enumerate() {
        let kind = kind_of(component);
        let place = format!("components[{i}] ({kind})");
        let body = component.get("text").and_then(Value::as_str).unwrap_or_default();
        all_text.push_str(body);
        all_text.push('\n');
        match kind.as_str() {
            "HEADER" => {
                let format = component.get("format").and_then(Value::as_str).unwrap_or("TEXT").to_ascii_uppercase();
                if format == "TEXT" {
                    let place = format!("{place}.text");
                    if chars(body) > 60 {
                        error(
                            &mut findings,
                            "header.length",
                            &place,
                            format!("{} characters, at most 60", chars(body)),
                        );
                    }
                    if let Some(mark) = MARKDOWN.iter().find(|m| body.contains(**m)) {
                        error(
                            &mut findings,
                            "header.markdown",
                            &place,
                            format!("no formatting in a header: remove {mark:?}"),
                        );
                    }
                    let names = check_params(&mut findings, body, &place, named);
                    if names.len() > 1 {
                        error(
                            &mut findings,
                            "header.parameters",
                            &place,
                            format!("{} parameters, at most 1", names.len()),
                        );
                    }
                    check_examples(&mut findings, component, &names, named, &place, "HEADER");
                } else if !matches!(format.as_str(), "IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION" | "GIF") {
                    error(
                        &mut findings,
                        "header.format",
                        &place,
                        format!("{format:?}: TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION"),
                    );
                }
            }
            "BODY" => {
                let place = format!("{place}.text");
                if body.trim().is_empty() {
                    error(&mut findings, "body.required", &place, "the body has no text".into());
                }
                if chars(body) > 1024 {
                    error(&mut findings, "body.length", &place, format!("{} characters, at most 1024", chars(body)));
                }
                let names = check_params(&mut findings, body, &place, named);
                let trimmed = body.trim();
                if trimmed.starts_with("{{") {
                    error(
                        &mut findings,
                        "body.parameter.leading",
                        &place,
                        "the body starts with a parameter: start with words".into(),
                    );
                }
                if trimmed.ends_with("}}") {
                    error(
                        &mut findings,
                        "body.parameter.trailing",
                        &place,
                        "the body ends with a parameter: end with words or punctuation".into(),
                    );
                }
                let words = params(body)
                    .iter()
                    .fold(body.to_owned(), |acc, p| acc.replace(&body[p.start..p.end], " "))
                    .split_whitespace()
                    .filter(|w| w.chars().any(char::is_alphabetic))
                    .count();
                if !names.is_empty() && words < names.len() {
                    warning(
                        &mut findings,
                        "body.parameter.ratio",
                        &place,
                        format!(
                            "{} parameters for {words} words: Meta rejects too many parameters for the text (2388293; \
                             threshold unpublished: fewer words than parameters assumed too many)",
                            names.len()
                        ),
                    );
                }
                check_examples(&mut findings, component, &names, named, &place, "BODY");
            }
            "FOOTER" => {
                let place = format!("{place}.text");
                if chars(body) > 60 {
                    error(&mut findings, "footer.length", &place, format!("{} characters, at most 60", chars(body)));
                }
                if !params(body).is_empty() {
                    error(&mut findings, "footer.parameters", &place, "no parameters in a footer".into());
                }
            }
            "BUTTONS" => check_buttons(&mut findings, component, &place, &mut button_texts),
            other => {
                error(&mut findings, "component.type", &place, format!("{other:?}: HEADER, BODY, FOOTER or BUTTONS"))
            }
        }
    }
    house_rules(&mut findings, &category, language, &all_text, &button_texts);
    findings
}

fn check_buttons(findings: &mut Vec<Finding>, component: &Value, place: &str, texts: &mut Vec<String>) {
    let buttons = component.get("buttons").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let kind = |b: &Value| b.get("type").and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase();
    let count = |k: &str| buttons.iter().filter(|b| kind(b) == k).count();
    if buttons.len() > 10 {
        error(findings, "buttons.count", place, format!("{} buttons, at most 10", buttons.len()));
    }
    for (k, max) in [("QUICK_REPLY", 10), ("URL", 2), ("PHONE_NUMBER", 1), ("COPY_CODE", 1)] {
        if count(k) > max {
            error(findings, "buttons.count", place, format!("{} {k} buttons, at most {max}", count(k)));
        }
    }
    // Quick replies together: all before or all after the others.
    let quick: Vec<bool> = buttons.iter().map(|b| kind(b) == "QUICK_REPLY").collect();
    let switches = quick.windows(2).filter(|w| w[0] != w[1]).count();
    if switches > 1 {
        error(
            findings,
            "buttons.order",
            place,
            "group the QUICK_REPLY buttons: all before or all after the others".into(),
        );
    }
    for (i, button) in buttons.iter().enumerate() {
        let here = format!("{place}.buttons[{i}]");
        let label = button.get("text").and_then(Value::as_str).unwrap_or_default();
        texts.push(label.to_owned());
        if kind(button) != "COPY_CODE" && kind(button) != "OTP" && label.is_empty() {
            error(findings, "button.text", &here, "a button needs text".into());
        }
        if chars(label) > 25 {
            error(findings, "button.text.length", &here, format!("{} characters, at most 25", chars(label)));
        }
        match kind(button).as_str() {
            "URL" => {
                let url = button.get("url").and_then(Value::as_str).unwrap_or_default();
                if url.is_empty() || chars(url) > 2000 {
                    error(findings, "button.url", &here, "a URL of 1 to 2000 characters".into());
                }
                let found = params(url);
                if found.len() > 1 || found.first().is_some_and(|p| p.end != url.len()) {
                    error(
                        findings,
                        "button.url.parameter",
                        &here,
                        "at most one parameter, at the very end of the URL".into(),
                    );
                }
                if !found.is_empty() && button.get("example").is_none() {
                    error(findings, "example.missing", &here, "the URL's parameter needs an example".into());
                }
            }
            "PHONE_NUMBER" => {
                let number = button.get("phone_number").and_then(Value::as_str).unwrap_or_default();
                if number.is_empty() || chars(number) > 20 {
                    error(findings, "button.phone_number", &here, "a phone number of 1 to 20 characters".into());
                }
            }
            "COPY_CODE" => {
                let example = match button.get("example") {
                    Some(Value::Array(values)) => values.first().and_then(Value::as_str).unwrap_or_default(),
                    Some(Value::String(s)) => s,
                    _ => "",
                };
                if chars(example) > 20 {
                    error(
                        findings,
                        "button.copy_code",
                        &here,
                        format!("the code example has {} characters, at most 20", chars(example)),
                    );
                }
            }
            "QUICK_REPLY" | "OTP" | "FLOW" | "MPM" | "SPM" | "CATALOG" | "REQUEST_CONTACT_INFO" | "VOICE_CALL" => {}
            other => error(findings, "button.type", &here, format!("{other:?} is not a button type Meta documents")),
        }
    }
}

fn house_rules(findings: &mut Vec<Finding>, category: &str, language: &str, text: &str, buttons: &[String]) {
    let lower = text.to_lowercase();
    let has = |words: &[&str], haystack: &str| words.iter().any(|w| haystack.contains(w));
    match category {
        "MARKETING" => {
            let buttons_text = buttons.join(" ").to_lowercase();
            if !has(&OPT_OUT, &lower) && !has(&OPT_OUT, &buttons_text) {
                warning(
                    findings,
                    "house.marketing.opt_out",
                    "components",
                    "a marketing template should say how to stop (\"Reply STOP to opt out\", or a \"Stop promotions\" quick reply)".into(),
                );
            }
        }
        "UTILITY" => {
            if let Some(word) = PROMOTION.iter().find(|w| lower.contains(**w)) {
                warning(
                    findings,
                    "house.utility.promotion",
                    "components",
                    format!(
                        "{word:?} reads as promotion: Meta recategorises utility templates with promotional content as marketing"
                    ),
                );
            }
        }
        _ => {}
    }
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() >= 10 {
        let latin = letters.iter().filter(|c| c.is_ascii_alphabetic() || ('\u{c0}'..='\u{24f}').contains(*c)).count();
        let share = latin as f64 / letters.len() as f64;
        let code = language.split(['_', '-']).next().unwrap_or_default().to_ascii_lowercase();
        if LATIN.contains(&code.as_str()) && share < 0.5 {
            warning(
                findings,
                "house.language",
                "language",
                format!("{language} is written in Latin letters, but most of the text is not"),
            );
        } else if NON_LATIN.contains(&code.as_str()) && share > 0.9 {
            warning(
                findings,
                "house.language",
                "language",
                format!("{language} is not written in Latin letters, but the text is"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Meta's example from the reference (§3), which must pass.
    fn metas_example() -> Value {
        json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "parameter_format": "positional", "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["#4521"]}},
            {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships {{3}}.", "example": {"body_text": [["Pablo", "860198", "today"]]}},
            {"type": "FOOTER", "text": "Lucky Shrub"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop updates"},
                {"type": "URL", "text": "Track", "url": "https://x.example/t/{{1}}", "example": ["860198"]},
                {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "15550051310"}]}]})
    }

    fn rules(template: &Value) -> Vec<&'static str> {
        lint(template).into_iter().map(|f| f.rule).collect()
    }

    fn with(mut template: Value, pointer: &str, value: Value) -> Value {
        *template.pointer_mut(pointer).unwrap() = value;
        template
    }

    #[test]
    fn metas_own_example_is_clean() {
        assert_eq!(lint(&metas_example()), []);
        let named = json!({"name": "welcome", "language": "en_US", "category": "MARKETING", "parameter_format": "named",
            "components": [{"type": "BODY", "text": "Hi {{first_name}}, our spring sale starts now. Reply STOP to opt out.",
                "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Pablo"}]}}]});
        assert_eq!(lint(&named), []);
    }

    #[test]
    fn each_rule_fires_on_a_template_that_breaks_it() {
        let base = metas_example;
        let body = "/components/1/text";
        let table: Vec<(&str, Value, &str)> = vec![
            ("name with capitals", with(base(), "/name", json!("Order-Update")), "name.format"),
            ("name too long", with(base(), "/name", json!("a".repeat(513))), "name.length"),
            ("no language", with(base(), "/language", json!("")), "language.required"),
            ("bad category", with(base(), "/category", json!("PROMO")), "category.value"),
            (
                "leading parameter",
                with(base(), body, json!("{{1}}, order {{2}} ships {{3}} soon.")),
                "body.parameter.leading",
            ),
            (
                "trailing parameter",
                with(base(), body, json!("Hi {{1}}, order {{2}} ships on {{3}}")),
                "body.parameter.trailing",
            ),
            (
                "adjacent parameters",
                with(base(), body, json!("Hi {{1}}{{2}}, it ships {{3}} now.")),
                "parameter.adjacent",
            ),
            ("a gap", with(base(), body, json!("Hi {{1}}, order {{3}} ships {{4}} now.")), "parameter.sequence"),
            ("out of order", with(base(), body, json!("Hi {{2}}, order {{1}} ships {{3}} now.")), "parameter.sequence"),
            (
                "special characters",
                with(base(), body, json!("Hi {{#1}}, order {{2}} ships {{3}} now.")),
                "parameter.format",
            ),
            (
                "named in positional",
                with(base(), body, json!("Hi {{name}}, order ships today, as planned.")),
                "parameter.mixed",
            ),
            ("body too long", with(base(), body, json!("x".repeat(1025))), "body.length"),
            ("example count", with(base(), "/components/1/example/body_text", json!([["Pablo"]])), "example.count"),
            ("no example", with(base(), "/components/1/example", json!({})), "example.missing"),
            ("header too long", with(base(), "/components/0/text", json!("x".repeat(61))), "header.length"),
            ("header markdown", with(base(), "/components/0/text", json!("*Order* {{1}}")), "header.markdown"),
            (
                "two header parameters",
                with(base(), "/components/0/text", json!("Order {{1}} of {{2}}")),
                "header.parameters",
            ),
            ("footer parameter", with(base(), "/components/2/text", json!("Shop {{1}}")), "footer.parameters"),
            ("footer too long", with(base(), "/components/2/text", json!("x".repeat(61))), "footer.length"),
            ("button text", with(base(), "/components/3/buttons/0/text", json!("x".repeat(26))), "button.text.length"),
            (
                "URL parameter in the middle",
                with(base(), "/components/3/buttons/1/url", json!("https://x.example/{{1}}/t")),
                "button.url.parameter",
            ),
            (
                "phone too long",
                with(base(), "/components/3/buttons/2/phone_number", json!("1".repeat(21))),
                "button.phone_number",
            ),
            (
                "two bodies",
                with(base(), "/components/2", json!({"type": "BODY", "text": "Another body here."})),
                "body.count",
            ),
            (
                "allow_category_change",
                with(base(), "/name", json!("order_update"))
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("allow_category_change".into(), json!(true));
                        Value::Object(o)
                    })
                    .unwrap(),
                "category.allow_change",
            ),
            (
                "quick replies split",
                with(
                    base(),
                    "/components/3/buttons",
                    json!([
                {"type": "QUICK_REPLY", "text": "A"}, {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "1555"}, {"type": "QUICK_REPLY", "text": "B"}]),
                ),
                "buttons.order",
            ),
            (
                "three URL buttons",
                with(
                    base(),
                    "/components/3/buttons",
                    json!([
                {"type": "URL", "text": "A", "url": "https://a.example"}, {"type": "URL", "text": "B", "url": "https://b.example"},
                {"type": "URL", "text": "C", "url": "https://c.example"}]),
                ),
                "buttons.count",
            ),
            (
                "flat examples",
                with(base(), "/components/1/example/body_text", json!(["Pablo", "860198", "today"])),
                "example.nesting",
            ),
            ("too many parameters", with(base(), body, json!("Hi {{1}}, {{2}} and {{3}}.")), "body.parameter.ratio"),
            (
                "utility with a promotion",
                with(base(), body, json!("Hi {{1}}, order {{2}} ships {{3}}. Get 20% off with our sale.")),
                "house.utility.promotion",
            ),
            (
                "marketing without opt-out",
                with(with(base(), "/category", json!("MARKETING")), "/components/3/buttons/0/text", json!("Shop")),
                "house.marketing.opt_out",
            ),
            (
                "language and script",
                with(base(), body, json!("Привет {{1}}, ваш заказ {{2}} будет отправлен {{3}} сегодня.")),
                "house.language",
            ),
            ("parameter format", with(base(), "/parameter_format", json!("numbered")), "parameter_format.value"),
            ("empty body", with(base(), body, json!("  ")), "body.required"),
            ("header format", with(base(), "/components/0/format", json!("AUDIO")), "header.format"),
            ("component type", with(base(), "/components/2/type", json!("SIDEBAR")), "component.type"),
            ("button without text", with(base(), "/components/3/buttons/0/text", json!("")), "button.text"),
            (
                "URL too long",
                with(base(), "/components/3/buttons/1/url", json!(format!("https://x.example/{}", "a".repeat(2000)))),
                "button.url",
            ),
            (
                "URL parameter without example",
                with(
                    base(),
                    "/components/3/buttons/1",
                    json!({"type": "URL", "text": "Track", "url": "https://x.example/t/{{1}}"}),
                ),
                "example.missing",
            ),
            (
                "copy code too long",
                with(base(), "/components/3/buttons/0", json!({"type": "COPY_CODE", "example": "X".repeat(21)})),
                "button.copy_code",
            ),
            ("unknown button type", with(base(), "/components/3/buttons/0/type", json!("TELEPORT")), "button.type"),
            (
                "eleven quick replies",
                with(
                    base(),
                    "/components/3/buttons",
                    json!((0..11).map(|i| json!({"type": "QUICK_REPLY", "text": format!("R{i}")})).collect::<Vec<_>>()),
                ),
                "buttons.count",
            ),
            (
                "a named parameter twice",
                json!({"name": "w", "language": "en_US", "category": "UTILITY", "parameter_format": "named",
                "components": [{"type": "BODY", "text": "Hi {{first_name}}, yes {{first_name}}, it ships.",
                    "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}]}),
                "parameter.unique",
            ),
        ];
        for (name, template, rule) in table {
            let found = rules(&template);
            assert!(found.contains(&rule), "{name}: expected {rule}, found {found:?}");
        }
    }

    #[test]
    fn errors_and_heuristics_are_told_apart() {
        let findings = lint(&with(metas_example(), "/components/1/text", json!("Hi {{1}}, {{2}} and {{3}}.")));
        let ratio = findings.iter().find(|f| f.rule == "body.parameter.ratio").unwrap();
        assert_eq!((ratio.severity, ratio.heuristic), (Severity::Warning, true));
        assert!(ratio.place.contains("components[1] (BODY)"));
        let findings = lint(&with(metas_example(), "/name", json!("Bad Name")));
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(!findings[0].heuristic);
        assert!(lint(&json!(null)).iter().any(|f| f.rule == "name.required"), "never panics on odd input");
        assert!(lint(&json!({"components": "x"})).iter().any(|f| f.rule == "body.count"));
    }
}
