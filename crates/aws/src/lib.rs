//! AWS adapters of TrackLayer's ports: DynamoDB stores, the SQS delivery queue, the KMS
//! keyring and the SES mailer. The table design is in `infra/README.md`; every adapter passes
//! the same contract suites as the embedded ones (`tests/moto.rs`, against moto server).
//!
//! Build the clients once per process (`AwsClients::load`) and share them: an SDK client is a
//! cheap handle over one connection pool.

pub mod config;
mod dynamo;
mod error;
mod kms;
pub mod provision;
mod ses;
mod signed;
mod sqs;
mod sts;

pub use config::{AwsConfig, ConfigError, QueueUrls, TableNames};
pub use dynamo::audit::DynamoAuditLog;
pub use dynamo::control::DynamoControlStore;
pub use dynamo::delivery_log::DynamoDeliveryLog;
pub use dynamo::dsr::DynamoDsrStore;
pub use dynamo::events::DynamoEventStore;
pub use dynamo::sessions::DynamoSessionStore;
pub use dynamo::stats::DynamoStats;
pub use kms::KmsKeyring;
pub use ses::{SesClient, SesError, SesMailer};
pub use sqs::{decode_body as decode_queue_body, SqsDeliveryQueue};
pub use sts::StsRoles;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

/// The SDK clients of one process.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub ses: SesClient,
    /// STS `AssumeRole`, for destinations signed with a customer's role (Firehose).
    pub sts: StsRoles,
}

impl AwsClients {
    /// Loads credentials the standard way (environment, web identity, container or instance
    /// role) for the configured region and endpoint.
    pub async fn load(config: &AwsConfig) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(config.aws_region.clone()))
            .http_client(https_client());
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Self::from_sdk_config(&loader.load().await)
    }

    /// Clients over an already loaded SDK configuration (tests: static credentials, moto).
    pub fn from_sdk_config(sdk: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            ses: SesClient::new(sdk),
            sts: StsRoles::new(sdk),
        }
    }
}

/// The HTTPS client of the SDK: hyper 1 + rustls with *ring*, the TLS stack the rest of the
/// workspace (reqwest) already builds, instead of the SDK default's aws-lc.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}
