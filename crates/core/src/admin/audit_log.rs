//! Reading and verifying the audit log.

use super::{require, AdminResult, AdminService, Principal};
use crate::audit::{AuditEntry, AuditFilter, Verification};
use crate::keys::Role;

impl AdminService {
    pub async fn audit_log(
        &self,
        p: &Principal,
        filter: AuditFilter,
    ) -> AdminResult<Vec<AuditEntry>> {
        require(p, Role::Admin, "read the audit log")?;
        Ok(self
            .ports
            .audit
            .list(&p.workspace_id, &filter, self.now())
            .await?)
    }

    /// Walks the whole keyed chain, from its checkpoint to its head, and reports the first
    /// seq that does not hold and why.
    pub async fn verify_audit_log(&self, p: &Principal) -> AdminResult<Verification> {
        require(p, Role::Admin, "verify the audit log")?;
        Ok(crate::audit::verify(self.ports.audit.as_ref(), &p.workspace_id).await?)
    }
}
