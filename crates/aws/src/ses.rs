//! `Mailer` on SES v2 (`SendEmail`, simple content, from the stack's verified sender).
//!
//! Two SES v2 operations are all TrackLayer uses, so they are two SigV4-signed REST-JSON
//! requests ([`SignedRest`], shared with STS) rather than the generated
//! `aws-sdk-sesv2` crate: that crate alone took 275 s of every cold build (CI and `make
//! lambda`), for two calls. Credentials, region and endpoint still come from the SDK's
//! configuration, so the standard credential chain and `AWS_ENDPOINT_URL` (moto) apply.
//!
//! Errors never carry SES's message text: it can name a recipient address.

use async_trait::async_trait;
use aws_config::SdkConfig;
use serde::Serialize;
use tracklayer_core::error::MailError;
use tracklayer_core::ports::{Mail, Mailer};

use crate::signed::{CallError, SignedRest};

/// Codes after which trying the same mail again is pointless.
const REJECTED: &[&str] = &[
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "BadRequestException",
    "NotFoundException",
    "AccountSuspendedException",
    "SendingPausedException",
];

/// Codes that mean "slow down and try again".
const THROTTLED: &[&str] = &["TooManyRequestsException", "LimitExceededException"];

/// A signed SES v2 client ([`SignedRest`]).
#[derive(Debug, Clone)]
pub struct SesClient {
    rest: SignedRest,
}

/// Why an SES call failed, classified by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum SesError {
    /// Network trouble, throttling or an SES-side error: try again later.
    #[error("SES is unavailable ({0})")]
    Transient(String),
    /// SES refused the request; the same request will fail again.
    #[error("SES refused the request ({0})")]
    Refused(String),
}

impl SesClient {
    /// A client for the region, endpoint and credentials of an SDK configuration.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            rest: SignedRest::new(sdk, "ses", "email"),
        }
    }

    /// `CreateEmailIdentity`: starts verification of a sender address (operators, tests).
    pub async fn create_email_identity(&self, email: &str) -> Result<(), SesError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Body<'a> {
            email_identity: &'a str,
        }
        self.call(
            "/v2/email/identities",
            &Body {
                email_identity: email,
            },
        )
        .await
    }

    /// `SendEmail` with simple text content.
    async fn send_email(&self, from: &str, mail: &Mail) -> Result<(), SesError> {
        let body = SendEmail {
            from_email_address: from,
            destination: Destination {
                to_addresses: &mail.to,
            },
            content: EmailContent {
                simple: Message {
                    subject: Content::utf8(&mail.subject),
                    body: MessageBody {
                        text: Content::utf8(&mail.text),
                    },
                },
            },
        };
        self.call("/v2/email/outbound-emails", &body).await
    }

    /// POSTs a signed JSON body and classifies the answer.
    async fn call(&self, path: &str, body: &impl Serialize) -> Result<(), SesError> {
        let body = serde_json::to_vec(body).map_err(|e| SesError::Refused(e.to_string()))?;
        match self.rest.post(path, "application/json", body).await {
            Ok(_) => Ok(()),
            Err(CallError::Unsendable(why)) => Err(SesError::Refused(why)),
            Err(CallError::Unavailable(why)) => Err(SesError::Transient(why)),
            Err(CallError::Refused(r)) => Err(classify(r.status, r.code)),
        }
    }
}

fn classify(status: u16, code: String) -> SesError {
    if REJECTED.contains(&code.as_str()) {
        SesError::Refused(code)
    } else if THROTTLED.contains(&code.as_str()) || status == 429 || status >= 500 {
        SesError::Transient(code)
    } else {
        SesError::Refused(code)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendEmail<'a> {
    from_email_address: &'a str,
    destination: Destination<'a>,
    content: EmailContent<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Destination<'a> {
    to_addresses: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EmailContent<'a> {
    simple: Message<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Message<'a> {
    subject: Content<'a>,
    body: MessageBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MessageBody<'a> {
    text: Content<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Content<'a> {
    data: &'a str,
    charset: &'static str,
}

impl<'a> Content<'a> {
    fn utf8(data: &'a str) -> Self {
        Self {
            data,
            charset: "UTF-8",
        }
    }
}

/// Notification mail through SES.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: SesClient,
    sender: String,
}

impl SesMailer {
    pub fn new(client: SesClient, sender: impl Into<String>) -> Self {
        Self {
            client,
            sender: sender.into(),
        }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        mail.check()?;
        match self.client.send_email(&self.sender, mail).await {
            Ok(()) => Ok(()),
            Err(SesError::Refused(code)) => Err(MailError::Rejected(format!(
                "SES refused the mail ({code})"
            ))),
            Err(e @ SesError::Transient(_)) => Err(MailError::Transient(Box::new(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient_and_refusals_are_not() {
        for (status, code, transient) in [
            (400, "TooManyRequestsException", true),
            (503, "HTTP 503", true),
            (400, "MessageRejected", false),
            (403, "HTTP 403", false),
        ] {
            let err = classify(status, code.into());
            let (is_transient, is_refused) = (
                matches!(err, SesError::Transient(_)),
                matches!(err, SesError::Refused(_)),
            );
            assert_eq!(is_transient, transient, "{code}");
            assert_eq!(is_refused, !transient, "{code}");
        }
    }

    #[test]
    fn send_email_serializes_as_the_ses_v2_wire_format() {
        let to = vec!["a@example.com".to_owned()];
        let body = SendEmail {
            from_email_address: "noreply@example.com",
            destination: Destination { to_addresses: &to },
            content: EmailContent {
                simple: Message {
                    subject: Content::utf8("s"),
                    body: MessageBody {
                        text: Content::utf8("t"),
                    },
                },
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({
                "FromEmailAddress": "noreply@example.com",
                "Destination": {"ToAddresses": ["a@example.com"]},
                "Content": {"Simple": {
                    "Subject": {"Data": "s", "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": "t", "Charset": "UTF-8"}}
                }}
            })
        );
    }
}
