//! The identifiers a request names, and their subject-index values.

use std::fmt;

use serde::Deserialize;

use crate::admin::AdminError;
use crate::crypto::WorkspaceKeys;
use crate::identity::{Field, Hints};

/// The identifiers of a subject as a request names them. Raw personal data: turned into
/// subject-index values at once, never stored, never logged.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectIdentifiers {
    #[serde(default)]
    pub email: Option<String>,
    /// In international format (`+49 30 1234567`).
    #[serde(default)]
    pub phone: Option<String>,
    /// The customer's user id (Segment `userId`).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Segment `anonymousId`.
    #[serde(default)]
    pub anonymous_id: Option<String>,
}

impl fmt::Debug for SubjectIdentifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("SubjectIdentifiers")
            .field("email", &given(&self.email))
            .field("phone", &given(&self.phone))
            .field("external_id", &given(&self.external_id))
            .field("anonymous_id", &given(&self.anonymous_id))
            .finish()
    }
}

/// The subject-index values of validated identifiers, with the names of the fields given.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectIndex {
    pub identifiers: Vec<String>,
    pub values: Vec<String>,
}

crate::debug_fields!(SubjectIndex: identifiers);

impl SubjectIdentifiers {
    /// Validates and indexes the identifiers exactly as ingest indexes an event's: the same
    /// canonical forms under the same HMAC and field tags ([`crate::ingest::subject_index`]).
    pub fn index(&self, keys: &WorkspaceKeys) -> Result<SubjectIndex, AdminError> {
        let mut identifiers = Vec::new();
        let mut values = Vec::new();
        let fields = [
            (
                Field::Email,
                &self.email,
                "subject.email",
                "must be an email address",
            ),
            (
                Field::Phone,
                &self.phone,
                "subject.phone",
                "must be a phone number in international format (+49 30 1234567)",
            ),
            (
                Field::ExternalId,
                &self.external_id,
                "subject.external_id",
                "must not be blank",
            ),
        ];
        for (field, value, name, detail) in fields {
            let Some(raw) = value else { continue };
            if raw.len() > 512 {
                return Err(AdminError::invalid(name, "must be at most 512 bytes"));
            }
            let index = crate::ingest::subject_index(keys, field, raw, Hints::default())
                .ok_or_else(|| AdminError::invalid(name, detail))?;
            identifiers.push(crate::ingest::field_tag(field).to_owned());
            values.push(index);
        }
        if let Some(anon) = &self.anonymous_id {
            let anon = anon.trim();
            if anon.is_empty() || anon.len() > 512 {
                return Err(AdminError::invalid(
                    "subject.anonymous_id",
                    "must be 1 to 512 bytes",
                ));
            }
            identifiers.push("anonymous_id".to_owned());
            values.push(crate::ingest::anonymous_subject_index(keys, anon));
        }
        if values.is_empty() {
            return Err(AdminError::invalid(
                "subject",
                "name at least one of email, phone, external_id, anonymous_id",
            ));
        }
        values.sort();
        values.dedup();
        Ok(SubjectIndex {
            identifiers,
            values,
        })
    }
}
