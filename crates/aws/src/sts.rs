//! `RoleCredentials` on STS `AssumeRole`: one signed Query-protocol request
//! ([`SignedRest`], shared with SES; no SDK crate), answered in XML.
//!
//! Source: the STS API reference of `AssumeRole`
//! (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>):
//! `Action=AssumeRole&Version=2011-06-15&RoleArn=…&RoleSessionName=…&ExternalId=…&DurationSeconds=…`
//! form-encoded; the answer's `AssumeRoleResult/Credentials` holds `AccessKeyId`,
//! `SecretAccessKey`, `SessionToken` and `Expiration` (ISO 8601). Errors: `AccessDenied` (the
//! trust policy does not let us, or the external id differs), `ValidationError`,
//! `MalformedPolicyDocument`, `PackedPolicyTooLarge`, `RegionDisabledException`: refused until
//! the customer changes the role; anything else (throttling, 5xx, our own credentials
//! unavailable) is retried.
//!
//! The credentials we sign `AssumeRole` with are the process's own (the deliver function's
//! role); the customer's trust policy names that role's account and requires the workspace id
//! as the external id (infra/README.md § Firehose).

use async_trait::async_trait;
use aws_config::SdkConfig;
use secrecy::SecretString;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracklayer_core::deliver::roles::{
    RoleCredentials, RoleError, RoleRequest, TemporaryCredentials,
};

use crate::signed::{CallError, SignedRest};

/// Seconds a session lasts: STS's default, the least every role allows.
pub const SESSION_SECONDS: u32 = 3600;

/// Codes after which the same `AssumeRole` fails again until the customer changes the role.
const REFUSED: &[&str] = &[
    "AccessDenied",
    "ValidationError",
    "MalformedPolicyDocument",
    "PackedPolicyTooLarge",
    "RegionDisabledException",
];

/// STS `AssumeRole` for the region, endpoint and credentials of an SDK configuration.
#[derive(Debug, Clone)]
pub struct StsRoles {
    rest: SignedRest,
}

impl StsRoles {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            rest: SignedRest::new(sdk, "sts", "sts"),
        }
    }
}

#[async_trait]
impl RoleCredentials for StsRoles {
    async fn assume(&self, request: &RoleRequest) -> Result<TemporaryCredentials, RoleError> {
        let duration = SESSION_SECONDS.to_string();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRole")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &request.role_arn)
            .append_pair("RoleSessionName", &request.session_name)
            .append_pair("ExternalId", &request.external_id)
            .append_pair("DurationSeconds", &duration)
            .finish();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        match self.rest.post("/", content_type, body.into_bytes()).await {
            Ok(answer) => credentials(&String::from_utf8_lossy(&answer)),
            Err(CallError::Unsendable(why)) => Err(RoleError::Refused(why)),
            Err(CallError::Unavailable(why)) => Err(RoleError::Unavailable(why)),
            Err(CallError::Refused(r)) => {
                let code = element(&String::from_utf8_lossy(&r.body), "Code")
                    .map(str::to_owned)
                    .unwrap_or(r.code);
                let why = format!("STS AssumeRole answered HTTP {} ({code})", r.status);
                Err(if REFUSED.contains(&code.as_str()) {
                    RoleError::Refused(format!(
                        "{why}: check the role's trust policy (TrackLayer's account as the \
                         principal, the workspace id as sts:ExternalId)"
                    ))
                } else {
                    RoleError::Unavailable(why)
                })
            }
        }
    }
}

/// The credentials of an `AssumeRoleResponse`.
fn credentials(xml: &str) -> Result<TemporaryCredentials, RoleError> {
    let missing =
        |name: &str| RoleError::Unavailable(format!("STS AssumeRole answered without {name}"));
    let field = |name: &'static str| element(xml, name).ok_or_else(|| missing(name));
    let expiration = field("Expiration")?;
    let expires_at = OffsetDateTime::parse(expiration, &Rfc3339)
        .map_err(|_| RoleError::Unavailable("STS AssumeRole answered a bad Expiration".into()))?;
    Ok(TemporaryCredentials {
        access_key_id: field("AccessKeyId")?.to_owned(),
        secret_access_key: SecretString::from(field("SecretAccessKey")?.to_owned()),
        session_token: SecretString::from(field("SessionToken")?.to_owned()),
        expires_at,
    })
}

/// The text of the first `<name>…</name>` element (STS values hold no markup).
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// The response example of the STS API reference (`AssumeRole`), shortened.
    const EXAMPLE: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>Alice</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId> <!-- pragma: allowlist secret -->
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW</SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>"#;

    #[test]
    fn the_documented_assume_role_response_gives_its_credentials_and_expiry() {
        let c = credentials(EXAMPLE).unwrap();
        assert_eq!(c.access_key_id, "ASIAIOSFODNN7EXAMPLE"); // pragma: allowlist secret
        assert_eq!(
            c.secret_access_key.expose_secret(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY" // pragma: allowlist secret
        );
        assert!(c.session_token.expose_secret().starts_with("AQoDYXdzEPT"));
        assert_eq!(
            c.expires_at,
            time::macros::datetime!(2019-11-09 13:34:41 UTC)
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("AQoDYXdz"),
            "{shown}"
        );
    }

    #[test]
    fn an_answer_without_credentials_is_an_error_not_empty_credentials() {
        let err = credentials("<AssumeRoleResponse/>").unwrap_err();
        assert!(matches!(err, RoleError::Unavailable(_)), "{err:?}");
    }
}
