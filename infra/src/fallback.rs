//! [`Notifier`] over AWS: fallback SMS through Amazon SNS (`Publish` to a phone number, sent by
//! AWS End User Messaging SMS), fallback e-mail through Amazon SES v2 (`SendEmail`).
//!
//! The clients make one attempt per call (no SDK retries): a retry after a timeout or a server
//! error could send the message twice, which the fallback function must never do. Errors are
//! classified for it: refused (a retry fails the same way), unavailable (nothing sent: retried
//! later), ambiguous (it may have been sent: ended, never retried).

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use wa_core::fallback::{Email, Sms};
use wa_core::ports::{Notifier, NotifyError};

use crate::aws::describe;

/// Error codes that mean "nothing was done, try later".
const LATER_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "LimitExceededException",
    "KMSThrottlingException",
];

/// Who fallback messages come from.
#[derive(Debug, Clone, Default)]
pub struct Senders {
    /// SES's verified from-address (`FALLBACK_EMAIL_FROM`); without it, e-mails are refused.
    pub email_from: Option<String>,
    /// SES configuration set (`SES_CONFIGURATION_SET`), for bounce and delivery tracking.
    pub configuration_set: Option<String>,
    /// SMS sender id where countries allow one (`SMS_SENDER_ID`).
    pub sms_sender_id: Option<String>,
    /// SMS origination number (`SMS_ORIGINATION_NUMBER`, E.164).
    pub sms_origination_number: Option<String>,
}

/// The AWS notifier; build it once per process.
#[derive(Debug, Clone)]
pub struct AwsNotifier {
    sns: aws_sdk_sns::Client,
    ses: aws_sdk_sesv2::Client,
    senders: Senders,
}

impl AwsNotifier {
    /// Clients for the region, endpoint and credentials of `config`, with one attempt per call.
    #[must_use]
    pub fn new(config: &SdkConfig, senders: Senders) -> Self {
        let once = config.to_builder().retry_config(RetryConfig::standard().with_max_attempts(1)).build();
        Self { sns: aws_sdk_sns::Client::new(&once), ses: aws_sdk_sesv2::Client::new(&once), senders }
    }
}

/// Classifies a failed call: see the module's documentation.
fn classify<E, R>(error: &SdkError<E, R>) -> NotifyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = describe(error);
    match error {
        SdkError::ConstructionFailure(_) => NotifyError::Refused(text),
        SdkError::DispatchFailure(failure) => {
            // Refused connections and name lookups fail before anything is sent.
            let lower = text.to_ascii_lowercase();
            if failure.is_user() || lower.contains("connection refused") || lower.contains("dns error") {
                NotifyError::Unavailable(text)
            } else {
                NotifyError::Ambiguous(text)
            }
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if LATER_CODES.contains(&code) {
                NotifyError::Unavailable(format!("{code}: {text}"))
            } else if code.starts_with("Internal") || code == "ServiceUnavailable" || code.is_empty() {
                NotifyError::Ambiguous(format!("{code}: {text}"))
            } else {
                NotifyError::Refused(format!("{code}: {}", service.err().message().unwrap_or_default()))
            }
        }
        _ => NotifyError::Ambiguous(text),
    }
}

fn utf8(data: &str) -> Result<Content, NotifyError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| NotifyError::Refused(e.to_string()))
}

fn text_attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| NotifyError::Refused(e.to_string()))
}

impl Notifier for AwsNotifier {
    async fn send_sms(&self, sms: &Sms) -> Result<String, NotifyError> {
        let mut publish = self
            .sns
            .publish()
            .phone_number(&sms.to)
            .message(&sms.text)
            .message_attributes("AWS.SNS.SMS.SMSType", text_attribute("Transactional")?);
        if let Some(id) = &self.senders.sms_sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", text_attribute(id)?);
        }
        if let Some(number) = &self.senders.sms_origination_number {
            publish = publish.message_attributes("AWS.MM.SMS.OriginationNumber", text_attribute(number)?);
        }
        let answer = publish.send().await.map_err(|e| classify(&e))?;
        answer.message_id().map(str::to_owned).ok_or_else(|| NotifyError::Ambiguous("SNS gave no message id".into()))
    }

    async fn send_email(&self, email: &Email) -> Result<String, NotifyError> {
        let Some(from) = &self.senders.email_from else {
            return Err(NotifyError::Refused("no sender address configured (FALLBACK_EMAIL_FROM)".into()));
        };
        let mut body = Body::builder().text(utf8(&email.text)?);
        if let Some(html) = &email.html {
            body = body.html(utf8(html)?);
        }
        let message = Message::builder().subject(utf8(&email.subject)?).body(body.build()).build();
        let answer = self
            .ses
            .send_email()
            .from_email_address(from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.senders.configuration_set.clone())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        answer.message_id().map(str::to_owned).ok_or_else(|| NotifyError::Ambiguous("SES gave no message id".into()))
    }
}
