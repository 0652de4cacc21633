//! Reading the parsed document: namespaced children, whole text, attributes.

use uppsala::{Document, NodeId, NodeKind};

use crate::SamlError;

pub(crate) const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Parses with DTDs forbidden (the decoder has already refused `<!DOCTYPE`; the parser
/// refusing it too keeps the rule true if the decoder's check is ever moved).
pub(crate) fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    uppsala::Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .parse(xml)
        .map_err(|_| SamlError::MalformedXml)
}

pub(crate) fn is(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.matches_name_ns(ns, local))
}

/// Element children of `node` named `ns:local`, in document order.
pub(crate) fn children(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> Vec<NodeId> {
    doc.children(node)
        .into_iter()
        .filter(|&c| is(doc, c, ns, local))
        .collect()
}

/// Every element child of `node`, whatever its name.
pub(crate) fn element_children(doc: &Document<'_>, node: NodeId) -> Vec<NodeId> {
    doc.children(node)
        .into_iter()
        .filter(|&c| doc.element(c).is_some())
        .collect()
}

/// The one child `ns:local` of `node`; none or several is a structure error.
pub(crate) fn only_child(
    doc: &Document<'_>,
    node: NodeId,
    ns: &str,
    local: &str,
) -> Result<NodeId, SamlError> {
    match children(doc, node, ns, local).as_slice() {
        [one] => Ok(*one),
        _ => Err(SamlError::Structure),
    }
}

/// At most one child `ns:local` of `node`; several is a structure error.
pub(crate) fn optional_child(
    doc: &Document<'_>,
    node: NodeId,
    ns: &str,
    local: &str,
) -> Result<Option<NodeId>, SamlError> {
    match children(doc, node, ns, local).as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(SamlError::Structure),
    }
}

/// Every element named `ns:local` anywhere in the document.
pub(crate) fn all(doc: &Document<'_>, ns: &str, local: &str) -> Vec<NodeId> {
    doc.descendants(doc.root())
        .into_iter()
        .filter(|&n| is(doc, n, ns, local))
        .collect()
}

pub(crate) fn attr<'d>(doc: &'d Document<'_>, node: NodeId, name: &str) -> Option<&'d str> {
    doc.element(node)
        .and_then(|e| {
            e.attributes
                .iter()
                .find(|a| a.name.namespace_uri.is_none() && a.name.local_name == name)
        })
        .map(|a| &*a.value)
}

pub(crate) fn required_attr<'d>(
    doc: &'d Document<'_>,
    node: NodeId,
    name: &str,
) -> Result<&'d str, SamlError> {
    attr(doc, node, name).ok_or(SamlError::Structure)
}

/// The whole text of an element that may hold only text: every text and CDATA child joined,
/// comments dropped (exclusive C14N drops them too, so the signed value is the joined one).
/// An element child is a structure error. `alice@example.com<!---->.evil.test` therefore reads
/// as `alice@example.com.evil.test`, never as its first text node.
pub(crate) fn whole_text(doc: &Document<'_>, node: NodeId) -> Result<String, SamlError> {
    let mut text = String::new();
    for child in doc.children(node) {
        match doc.node_kind(child) {
            Some(NodeKind::Text(t)) | Some(NodeKind::CData(t)) => text.push_str(t),
            Some(NodeKind::Comment(_)) => {}
            _ => return Err(SamlError::Structure),
        }
    }
    Ok(text.trim().to_owned())
}
