//! The local stack's fallback channels: SMS and e-mails are printed, never sent, and kept for the
//! demo and the tests to look at.

use std::sync::{Arc, Mutex};

use wa_core::fallback::{Email, Sms};
use wa_core::ports::{Notifier, NotifyError};

use crate::dev::mask;

/// A fallback the local stack would have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// An SMS.
    Sms(Sms),
    /// An e-mail.
    Email(Email),
}

/// Prints fallback SMS and e-mails (the number masked, the address's domain only) and keeps them.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    sent: Arc<Mutex<Vec<Sent>>>,
    quiet: bool,
}

impl Outbox {
    /// An outbox that prints what it is given (`quiet`: keeps it only).
    #[must_use]
    pub fn new(quiet: bool) -> Self {
        Self { sent: Arc::default(), quiet }
    }

    /// Everything given so far.
    #[must_use]
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn keep(&self, sent: Sent) -> String {
        let mut all = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.push(sent);
        format!("local-{}", all.len())
    }
}

/// `…@example.com`: enough of an address to tell it in a console.
fn domain(address: &str) -> String {
    address.rsplit_once('@').map_or_else(|| "…".to_owned(), |(_, domain)| format!("…@{domain}"))
}

impl Notifier for Outbox {
    async fn send_sms(&self, sms: &Sms) -> Result<String, NotifyError> {
        if !self.quiet {
            println!(
                "✉ fallback    SMS to {} (not sent: local stack), {} characters",
                mask(&sms.to),
                sms.text.chars().count()
            );
        }
        Ok(self.keep(Sent::Sms(sms.clone())))
    }

    async fn send_email(&self, email: &Email) -> Result<String, NotifyError> {
        if !self.quiet {
            println!(
                "✉ fallback    e-mail to {} (not sent: local stack), {} characters",
                domain(&email.to),
                email.text.chars().count()
            );
        }
        Ok(self.keep(Sent::Email(email.clone())))
    }
}
