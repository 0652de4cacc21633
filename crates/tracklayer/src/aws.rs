//! `tracklayer --backend aws init`: the operator's bootstrap of a deployed stack, with the
//! operator's own AWS credentials (the SDK's standard chain: environment, profile, role;
//! `AWS_ENDPOINT_URL` points it elsewhere, e.g. moto in tests).
//!
//! The stack's resources are found by name, without CloudFormation: `template.yaml` names
//! them after the stack (`tracklayer_aws::config::stack_table_names`, `stack_key_alias`).

use anyhow::{bail, Context};
use aws_config::BehaviorVersion;
use tracklayer_aws::config::{
    default_stack_name, residency_of_aws_region, stack_key_alias, stack_table_names,
    MAX_DATA_KEY_CACHE,
};
use tracklayer_aws::{DynamoControlStore, KmsKeyring};
use tracklayer_core::clock::{Clock, SystemClock, SystemIds};
use tracklayer_core::control_plane::{Bootstrapped, Control};
use tracklayer_core::email::Email;
use tracklayer_core::ports::ControlStore;
use tracklayer_core::workspace::Region;

/// The deployed stack a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub aws_region: String,
    pub residency: Region,
    pub stack: String,
}

impl Target {
    /// From `--region` (else `AWS_REGION`), `--stack` (else the residency's default name) and
    /// `init --region` (the residency, which must be the AWS region's).
    pub fn resolve(
        aws_region: Option<String>,
        stack: Option<String>,
        residency: Option<Region>,
    ) -> anyhow::Result<Self> {
        let aws_region = aws_region
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .context(
                "name the stack's AWS region: tracklayer --backend aws --region eu-central-1 init",
            )?;
        let Some(home) = residency_of_aws_region(&aws_region) else {
            bail!("{aws_region} is not a region TrackLayer deploys to (template.yaml rule ResidencyMatchesRegion)");
        };
        if let Some(asked) = residency.filter(|r| *r != home) {
            bail!("a stack in {aws_region} serves residency {home}, not {asked}");
        }
        let stack = stack
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default_stack_name(home));
        Ok(Self {
            aws_region,
            residency: home,
            stack,
        })
    }
}

/// Creates the stack's first workspace, its admin token and a write key, and prints them.
pub async fn init(
    target: &Target,
    name: &str,
    owner_email: Option<Email>,
) -> anyhow::Result<Bootstrapped> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(target.aws_region.clone()))
        .http_client(tracklayer_aws::https_client());
    if let Some(url) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = stack_table_names(&target.stack);
    dynamodb
        .describe_table()
        .table_name(&tables.control)
        .send()
        .await
        .with_context(|| {
            format!(
                "cannot read table {} in {}: is stack {} deployed there (--stack), and may these credentials use it?",
                tables.control, target.aws_region, target.stack
            )
        })?;
    let store = DynamoControlStore::new(dynamodb, &tables.control);
    let existing = store.workspaces(SystemClock.now()).await?;
    if !existing.is_empty() {
        bail!(
            "stack {} already has {} workspace(s); init creates the first one only (add more through the admin API)",
            target.stack,
            existing.len()
        );
    }
    let keyring = KmsKeyring::new(
        aws_sdk_kms::Client::new(&sdk),
        stack_key_alias(&target.stack),
        MAX_DATA_KEY_CACHE,
    );
    Control {
        store: &store,
        keyring: &keyring,
        clock: &SystemClock,
        ids: &SystemIds,
    }
    .bootstrap_owned_by(target.residency, name, owner_email)
    .await
    .with_context(|| {
        format!(
            "cannot create the first workspace of stack {}",
            target.stack
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_defaults_to_the_residency_of_its_region() {
        let t = Target::resolve(Some("eu-central-1".into()), None, None).unwrap();
        assert_eq!(t.residency, Region::Eu);
        assert_eq!(t.stack, "tracklayer-eu");
        let t = Target::resolve(
            Some("us-east-1".into()),
            Some("prod-us".into()),
            Some(Region::Us),
        )
        .unwrap();
        assert_eq!((t.residency, t.stack.as_str()), (Region::Us, "prod-us"));
    }

    #[test]
    fn refuses_a_residency_other_than_the_regions() {
        let err = Target::resolve(Some("eu-central-1".into()), None, Some(Region::Us)).unwrap_err();
        assert!(err.to_string().contains("serves residency eu"), "{err}");
        let err = Target::resolve(Some("ap-south-1".into()), None, None).unwrap_err();
        assert!(err.to_string().contains("not a region"), "{err}");
    }
}
