//! Role-based access (whitepaper §04): the roles, who is calling, and the one check every
//! control-plane use case makes before it acts.

use serde::{Deserialize, Serialize};

use crate::admin::AdminError;
use crate::keys::KeyId;
use crate::workspace::WorkspaceId;

/// Admin API roles (whitepaper §04).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

/// Who is calling: from a verified personal access token or service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub workspace_id: WorkspaceId,
    pub role: Role,
    /// `user:usr_…` or `svc:<key id>`; `cli:operator` for the operator CLI.
    pub actor: String,
    pub key_id: Option<KeyId>,
}

impl Principal {
    /// The operator on the machine (CLI on a data directory): admin of the workspace.
    pub fn operator(ws: &WorkspaceId) -> Self {
        Self {
            workspace_id: ws.clone(),
            role: Role::Admin,
            actor: "cli:operator".into(),
            key_id: None,
        }
    }
}

pub(crate) fn require(
    p: &Principal,
    at_least: Role,
    action: &'static str,
) -> Result<(), AdminError> {
    if p.role >= at_least {
        Ok(())
    } else {
        Err(AdminError::Forbidden {
            role: p.role,
            action,
        })
    }
}
