//! The XML-DSig profile: which signatures may exist, what they may say, and what they must
//! point at. Cryptography (digest over exclusive C14N of the parsed original bytes, RSA
//! verification with the pinned keys only) is bergshamra's; every rule around it is ours.

use bergshamra::core::algorithm;
use bergshamra::{DsigContext, KeysManager, VerifyResult};
use uppsala::{Document, NodeId};

use crate::certificate::PinnedCertificates;
use crate::dom::{self, DSIG};
use crate::SamlError;

/// Signature methods accepted: RSA PKCS#1 v1.5 and RSA-PSS with SHA-256 or stronger. SHA-1
/// (and SHA-224) are refused.
const SIGNATURE_METHODS: [&str; 6] = [
    algorithm::RSA_SHA256,
    algorithm::RSA_SHA384,
    algorithm::RSA_SHA512,
    algorithm::RSA_PSS_SHA256,
    algorithm::RSA_PSS_SHA384,
    algorithm::RSA_PSS_SHA512,
];
const DIGEST_METHODS: [&str; 3] = [algorithm::SHA256, algorithm::SHA384, algorithm::SHA512];
/// The only transforms a reference may list (each at most once).
const TRANSFORMS: [&str; 2] = [algorithm::ENVELOPED_SIGNATURE, algorithm::EXC_C14N];

/// Verifies every `ds:Signature` of the document under the profile and returns the elements
/// the verified references resolved to (the signed Response, if it is signed, and the signed
/// Assertion). `assertion` must be among them: an unsigned assertion is refused even when the
/// Response around it is signed.
///
/// Rules: a signature may only be a direct child of the Response or of the Assertion; its
/// `SignedInfo` holds exclusive C14N, an accepted signature method and exactly one Reference
/// whose URI is `#` + the ID of that parent; the reference lists only the enveloped and
/// exclusive-C14N transforms and an accepted digest; bergshamra verifies it with the pinned
/// keys only (never a key or certificate from `KeyInfo`) and reports that the reference
/// resolved to that very parent element.
pub(crate) fn verify(
    doc: &Document<'_>,
    xml: &str,
    response: NodeId,
    assertion: NodeId,
    pinned: &PinnedCertificates,
) -> Result<(), SamlError> {
    let signatures = dom::all(doc, DSIG, "Signature");
    let mut signed = Vec::with_capacity(signatures.len());
    for &signature in &signatures {
        let parent = doc.parent(signature).ok_or(SamlError::Structure)?;
        if parent != response && parent != assertion {
            return Err(SamlError::Structure);
        }
        check_signed_info(doc, signature, parent)?;
        signed.push((signature, parent));
    }
    if !signed.iter().any(|&(_, parent)| parent == assertion) {
        return Err(SamlError::Signature);
    }
    let context = context(pinned)?;
    let results =
        bergshamra::dsig::verify::verify_all_document_with_source(&context, doc, Some(xml))
            .map_err(|_| SamlError::Signature)?;
    if results.len() != signed.len() {
        return Err(SamlError::Signature);
    }
    for (result, (signature, parent)) in results.iter().zip(signed) {
        match result {
            VerifyResult::Valid {
                signature_node,
                references,
                ..
                // nosemgrep: tl-secret-eq — DOM node ids of the parsed response, not secret bytes
            } if *signature_node == signature
                && references.len() == 1
                && references[0].digest_verified
                && references[0].resolved_node == Some(parent) => {}
            _ => return Err(SamlError::Signature),
        }
    }
    Ok(())
}

/// bergshamra's hardened context: pinned keys only (`trusted_keys_only`), reference targets
/// restricted to the signature's ancestors and siblings (`strict_verification`), every
/// reference digested locally.
fn context(pinned: &PinnedCertificates) -> Result<DsigContext, SamlError> {
    let mut keys = KeysManager::new();
    for certificate in pinned.iter() {
        keys.add_key(certificate.key().map_err(|_| SamlError::Signature)?);
    }
    let context = DsigContext::new(keys)
        .with_trusted_keys_only(true)
        .with_strict_verification(true)
        .with_require_reference_digests(true);
    Ok(context)
}

fn algorithm_of<'d>(doc: &'d Document<'_>, node: NodeId) -> Result<&'d str, SamlError> {
    dom::required_attr(doc, node, "Algorithm")
}

/// The shape of a signature, element by element: `SignedInfo`, `SignatureValue` and an
/// optional `KeyInfo` (never an `Object`, where wrapping attacks hide their copies); inside,
/// exactly the canonicalization, the method and one reference; so that nothing the verifier
/// reads can come from a second element of the same name.
fn check_signed_info(
    doc: &Document<'_>,
    signature: NodeId,
    parent: NodeId,
) -> Result<(), SamlError> {
    let names = dom::element_children(doc, signature);
    let shape_ok = match names.as_slice() {
        [info, value] => {
            dom::is(doc, *info, DSIG, "SignedInfo") && dom::is(doc, *value, DSIG, "SignatureValue")
        }
        [info, value, key_info] => {
            dom::is(doc, *info, DSIG, "SignedInfo")
                && dom::is(doc, *value, DSIG, "SignatureValue")
                && dom::is(doc, *key_info, DSIG, "KeyInfo")
        }
        _ => false,
    };
    if !shape_ok {
        return Err(SamlError::Structure);
    }
    let signed_info = names[0];
    let [c14n, method, reference] = dom::element_children(doc, signed_info)[..] else {
        return Err(SamlError::Structure);
    };
    if !dom::is(doc, c14n, DSIG, "CanonicalizationMethod")
        || !dom::is(doc, method, DSIG, "SignatureMethod")
        || !dom::is(doc, reference, DSIG, "Reference")
    {
        return Err(SamlError::Structure);
    }
    if algorithm_of(doc, c14n)? != algorithm::EXC_C14N
        || !SIGNATURE_METHODS.contains(&algorithm_of(doc, method)?)
    {
        return Err(SamlError::Algorithm);
    }
    let id = dom::required_attr(doc, parent, "ID")?;
    if dom::attr(doc, reference, "URI") != Some(&format!("#{id}")) {
        return Err(SamlError::Signature);
    }
    check_reference(doc, reference)
}

/// A reference is `[Transforms] DigestMethod DigestValue`, nothing more: the transforms are
/// the enveloped signature and exclusive C14N (each at most once), the digest SHA-256 or
/// stronger.
fn check_reference(doc: &Document<'_>, reference: NodeId) -> Result<(), SamlError> {
    let (transforms, digest) = match dom::element_children(doc, reference).as_slice() {
        [t, m, v] if dom::is(doc, *t, DSIG, "Transforms") && is_digest(doc, *m, *v) => {
            (Some(*t), *m)
        }
        [m, v] if is_digest(doc, *m, *v) => (None, *m),
        _ => return Err(SamlError::Structure),
    };
    let mut seen = Vec::new();
    for transform in transforms
        .map(|t| dom::element_children(doc, t))
        .unwrap_or_default()
    {
        if !dom::is(doc, transform, DSIG, "Transform") {
            return Err(SamlError::Structure);
        }
        let uri = algorithm_of(doc, transform)?;
        if !TRANSFORMS.contains(&uri) {
            return Err(SamlError::Algorithm);
        }
        if seen.contains(&uri) {
            return Err(SamlError::Structure);
        }
        seen.push(uri);
    }
    if !DIGEST_METHODS.contains(&algorithm_of(doc, digest)?) {
        return Err(SamlError::Algorithm);
    }
    Ok(())
}

fn is_digest(doc: &Document<'_>, method: NodeId, value: NodeId) -> bool {
    dom::is(doc, method, DSIG, "DigestMethod") && dom::is(doc, value, DSIG, "DigestValue")
}
