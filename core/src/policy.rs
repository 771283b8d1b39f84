//! The send policy, pure: what the sender does with a request given the person's conversation
//! facts, the template's learned category and the time. The sender gathers the facts, asks
//! [`decide`], and acts on the answer; it holds no rules of its own.

use crate::conversation::ConversationFacts;
use crate::outcome::OutcomeStatus;
use crate::send::{Delivery, SendRequest};

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the message.
    Send,
    /// Send the fallback template instead (the service window is closed).
    SendFallback,
    /// Do not send; end the request with this outcome.
    Refuse(OutcomeStatus, &'static str),
}

/// What becomes of a send whose result is unknown: Meta may have accepted it (a timeout or 5xx
/// after sending), or an earlier attempt claimed it and never finished (a crash mid-call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguous {
    /// Send again once the claim expires (the person may get it twice): `at_least_once`.
    Retry,
    /// End with an `unknown` outcome, never sending again: `at_most_once`.
    EndUnknown,
}

/// The request's answer to an ambiguous send ([`Ambiguous`]).
#[must_use]
pub fn on_ambiguous(delivery: Delivery) -> Ambiguous {
    match delivery {
        Delivery::AtLeastOnce => Ambiguous::Retry,
        Delivery::AtMostOnce => Ambiguous::EndUnknown,
    }
}

/// The reason of an `unknown` outcome after an ambiguous send.
pub const UNKNOWN_AMBIGUOUS: &str =
    "unknown: the send's result was lost (timeout or server error after sending); not retried (delivery: at_most_once)";
/// The reason of an `unknown` outcome when an earlier attempt never finished.
pub const UNKNOWN_INTERRUPTED: &str =
    "unknown: an earlier attempt stopped while sending (crash or timeout); not retried (delivery: at_most_once)";

/// Refusal reasons (the text of the outcome's `error.reason`).
pub const OPTED_OUT: &str = "opted_out: the user stopped marketing messages";
/// A free-form message outside the window, with no fallback.
pub const WINDOW_CLOSED: &str = "window_closed: no message from the user in the last 24 hours";

/// A template a decision needs the category of: (name, language code).
pub type TemplateRef<'a> = (&'a str, &'a str);

fn message_type(request: &SendRequest) -> Option<&str> {
    request.message.get("type").and_then(serde_json::Value::as_str)
}

fn is_read_receipt(request: &SendRequest) -> bool {
    request.message.get("status").and_then(serde_json::Value::as_str) == Some("read")
}

/// Whether the rules apply at all: not for read receipts, requests without a recipient, or when
/// enforcement is off (a pipeline that does not receive the webhooks has no facts).
#[must_use]
pub fn applies(request: &SendRequest, enforce: bool) -> bool {
    enforce && request.to.is_some() && !is_read_receipt(request)
}

/// The template whose learned category [`decide`] needs: only for a template without a declared
/// category to a user who opted out of marketing.
#[must_use]
pub fn template_needed<'a>(request: &'a SendRequest, facts: &ConversationFacts) -> Option<TemplateRef<'a>> {
    if !facts.marketing_opt_out || request.category.is_some() || message_type(request) != Some("template") {
        return None;
    }
    let template = request.message.get("template")?;
    let name = template.get("name").and_then(serde_json::Value::as_str)?;
    let language = template.pointer("/language/code").and_then(serde_json::Value::as_str).unwrap_or_default();
    Some((name, language))
}

/// The decision for `request` to a person with `facts` at `now` (Unix seconds). `learned_category`
/// is the template's category from the registry when [`template_needed`] asked for it.
///
/// 1. Marketing (declared, else learned from template webhooks) to an opted-out person: refused.
/// 2. Templates: sent (they open conversations outside the window).
/// 3. Anything else: sent inside the 24 h service window; else the fallback template when there is
///    one; else refused as `window_closed`.
#[must_use]
pub fn decide(request: &SendRequest, facts: &ConversationFacts, learned_category: Option<&str>, now: i64) -> Decision {
    let marketing = crate::fallback::is_marketing(request, learned_category);
    if facts.marketing_opt_out && marketing {
        return Decision::Refuse(OutcomeStatus::OptedOut, OPTED_OUT);
    }
    if message_type(request) == Some("template") {
        return Decision::Send;
    }
    if facts.service_window_open(now) {
        Decision::Send
    } else if request.fallback.is_some() {
        Decision::SendFallback
    } else {
        Decision::Refuse(OutcomeStatus::WindowClosed, WINDOW_CLOSED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::Category;
    use serde_json::json;

    #[test]
    fn an_ambiguous_send_is_retried_unless_the_request_is_at_most_once() {
        for (delivery, expected) in
            [(Delivery::AtLeastOnce, Ambiguous::Retry), (Delivery::AtMostOnce, Ambiguous::EndUnknown)]
        {
            assert_eq!(on_ambiguous(delivery), expected, "{delivery:?}");
        }
        let parsed: SendRequest = serde_json::from_value(
            json!({"phone_number_id": "1", "to": "16505551234", "message": {"type": "text"}, "delivery": "at_most_once"}),
        )
        .unwrap();
        assert_eq!(parsed.delivery, Delivery::AtMostOnce);
        assert_eq!(request(json!({"type": "text"}), None, false).delivery, Delivery::AtLeastOnce);
        assert!(
            serde_json::from_value::<SendRequest>(
                json!({"phone_number_id": "1", "message": {"type": "text"}, "delivery": "exactly_once"})
            )
            .is_err()
        );
    }

    fn request(message: serde_json::Value, category: Option<Category>, fallback: bool) -> SendRequest {
        let mut value = json!({"phone_number_id": "1", "to": "16505551234", "message": message});
        if let Some(category) = category {
            value["category"] = serde_json::to_value(category).unwrap();
        }
        if fallback {
            value["fallback"] = json!({"type": "template", "template": {"name": "hello", "language": {"code": "en"}}});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_policy_as_a_table() {
        let now = 1_800_000_000;
        let text = || json!({"type": "text", "text": {"body": "hi"}});
        let template = || json!({"type": "template", "template": {"name": "promo", "language": {"code": "en"}}});
        let open = ConversationFacts { last_inbound_at: Some(now - 3600), ..Default::default() };
        let closed = ConversationFacts { last_inbound_at: Some(now - 25 * 3600), ..Default::default() };
        let never = ConversationFacts::default();
        let out = |f: ConversationFacts| ConversationFacts { marketing_opt_out: true, ..f };
        let shut = ConversationFacts { window_closed_at: Some(now - 60), ..open };
        use Decision::{Refuse, Send, SendFallback};
        let window = Refuse(OutcomeStatus::WindowClosed, WINDOW_CLOSED);
        let opted = Refuse(OutcomeStatus::OptedOut, OPTED_OUT);
        #[rustfmt::skip]
        let table: Vec<(&str, SendRequest, ConversationFacts, Option<&str>, Decision)> = vec![
            ("text in the window", request(text(), None, false), open, None, Send),
            ("text after 24 h", request(text(), None, false), closed, None, window),
            ("text, never wrote", request(text(), None, false), never, None, window),
            ("text after 24 h with a fallback", request(text(), None, true), closed, None, SendFallback),
            ("text after a 131047", request(text(), None, false), shut, None, window),
            ("template outside the window", request(template(), None, false), closed, None, Send),
            ("declared marketing, opted out", request(template(), Some(Category::Marketing), false), out(open), None, opted),
            ("declared utility, opted out", request(template(), Some(Category::Utility), false), out(open), None, Send),
            ("learned marketing, opted out", request(template(), None, false), out(closed), Some("marketing"), opted),
            ("learned utility, opted out", request(template(), None, false), out(closed), Some("utility"), Send),
            ("unknown template, opted out", request(template(), None, false), out(closed), None, Send),
            ("marketing, not opted out", request(template(), Some(Category::Marketing), false), never, None, Send),
            ("declared marketing text, opted out", request(text(), Some(Category::Marketing), false), out(open), None, opted),
        ];
        for (name, request, facts, learned, expected) in table {
            assert_eq!(decide(&request, &facts, learned, now), expected, "{name}");
        }
    }

    #[test]
    fn the_template_category_is_looked_up_only_when_it_matters() {
        let template = json!({"type": "template", "template": {"name": "promo", "language": {"code": "pt_BR"}}});
        let opted_out = ConversationFacts { marketing_opt_out: true, ..Default::default() };
        let r = request(template.clone(), None, false);
        assert_eq!(template_needed(&r, &opted_out), Some(("promo", "pt_BR")));
        assert_eq!(template_needed(&r, &ConversationFacts::default()), None, "not opted out");
        assert_eq!(template_needed(&request(template, Some(Category::Utility), false), &opted_out), None, "declared");
        let text = request(json!({"type": "text", "text": {"body": "x"}}), None, false);
        assert_eq!(template_needed(&text, &opted_out), None);
    }

    #[test]
    fn read_receipts_and_enforcement() {
        let receipt: SendRequest =
            serde_json::from_value(json!({"phone_number_id": "1", "message": {"status": "read", "message_id": "w"}}))
                .unwrap();
        assert!(!applies(&receipt, true));
        let text = request(json!({"type": "text", "text": {"body": "x"}}), None, false);
        assert!(applies(&text, true));
        assert!(!applies(&text, false));
    }
}
