//! Format 1, written until format 2 replaced it and still read: the workspace id, event
//! type, profiles, fields, destination ids and kinds as strings, the three times in full.

use tracklayer_core::consent::Decision;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{codes, Routing};

use super::wire::Reader;

/// The version byte of this format.
pub(super) const VERSION: u8 = 1;

/// One routing entry: destination id, kind, flags (routed, allowed), consent reason (its
/// code, or 0 and the string), why it was skipped (0, or 1 and the string).
pub(super) fn routing(r: &mut Reader<'_>) -> Result<Routing, StoreError> {
    let destination_id = r.parsed()?;
    let kind = r.parsed()?;
    let flags = r.byte()?;
    let reason = match r.byte()? {
        0 => r.str()?.to_owned(),
        code => codes::reason_of(code).ok_or_else(|| r.corrupt("a reason code"))?,
    };
    Ok(Routing {
        destination_id,
        kind,
        routed: flags & 1 != 0,
        consent: Decision {
            allowed: flags & 2 != 0,
            reason,
        },
        skipped: r.opt_str()?,
    })
}
