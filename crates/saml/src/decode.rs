//! From the `SAMLResponse` form field to UTF-8 XML text: size cap, strict base64, no DOCTYPE.

use base64::Engine as _;

use crate::SamlError;

/// The largest `SAMLResponse` form field accepted (base64 text, before decoding). Real
/// responses with a certificate and a few attributes are 5–15 KiB.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Decodes the HTTP-POST binding's `SAMLResponse` value.
///
/// Strict base64: the standard alphabet with canonical padding (the `base64` crate's
/// `STANDARD` engine also refuses non-zero trailing bits). Only CR and LF may appear between
/// characters, because some IdPs wrap the value at 64 or 76 columns; any other byte outside the
/// alphabet (spaces, `-`/`_` of the URL-safe alphabet, `%`) is refused, not skipped.
pub fn response_xml(form_value: &str) -> Result<String, SamlError> {
    if form_value.len() > MAX_RESPONSE_BYTES {
        return Err(SamlError::TooLarge);
    }
    let compact: Vec<u8> = form_value
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SamlError::Encoding)?;
    let xml = String::from_utf8(bytes).map_err(|_| SamlError::Encoding)?;
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(SamlError::Doctype);
    }
    Ok(xml)
}
