//! `Mailer` on SES v2 (`SendEmail`, simple content, from the stack's verified sender).
//! Errors never carry SES's message text: it can name a recipient address.

use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sesv2::Client;
use tracklayer_core::error::MailError;
use tracklayer_core::ports::{Mail, Mailer};

use crate::error::{classify, code, Class};

/// Codes after which trying the same mail again is pointless.
const REJECTED: &[&str] = &[
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "BadRequestException",
    "NotFoundException",
    "AccountSuspendedException",
];

/// Notification mail through SES.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    sender: String,
}

impl SesMailer {
    pub fn new(client: Client, sender: impl Into<String>) -> Self {
        Self {
            client,
            sender: sender.into(),
        }
    }
}

fn header_safe(s: &str) -> bool {
    !s.contains(['\r', '\n'])
}

fn content(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Rejected(format!("mail content: {e}")))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if mail.to.is_empty() {
            return Err(MailError::Rejected("no recipient".into()));
        }
        if mail
            .to
            .iter()
            .any(|to| !header_safe(to) || !to.contains('@'))
        {
            return Err(MailError::Rejected(
                "a recipient is not an email address".into(),
            ));
        }
        if !header_safe(&mail.subject) {
            return Err(MailError::Rejected("the subject has a line break".into()));
        }
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(Body::builder().text(content(&mail.text)?).build())
            .build();
        let result = self
            .client
            .send_email()
            .from_email_address(&self.sender)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(mail.to.clone()))
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match code(&err) {
                Some(c) if REJECTED.contains(&c) => {
                    Err(MailError::Rejected(format!("SES refused the mail ({c})")))
                }
                _ => match classify(&err) {
                    Class::Transient => Err(MailError::Transient(Box::new(err))),
                    Class::ConditionFailed | Class::Permanent => Err(MailError::Rejected(format!(
                        "SES refused the mail ({})",
                        code(&err).unwrap_or("unknown error")
                    ))),
                },
            },
        }
    }
}
