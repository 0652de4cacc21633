//! Reading a verified Response: the profile's order of checks and the identity it yields.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uppsala::{Document, NodeId};

use crate::dom::{self, SAML, SAMLP};
use crate::{decode, signature, Expected, IdentityProvider, SamlError, ServiceProvider};

/// How far the IdP's clock may be from ours, either way.
pub const CLOCK_SKEW: Duration = Duration::minutes(3);

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";

/// One `saml:Attribute` of the assertion: its `Name` and the whole text of each value.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub values: Vec<String>,
}

impl std::fmt::Debug for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field("values", &self.values.len())
            .finish()
    }
}

/// What a response that passed every rule says, read only from the signed Assertion.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The Assertion's `ID`: the replay cache's key.
    pub assertion_id: String,
    /// The `NameID`, read whole (usually the user's email).
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    pub attributes: Vec<Attribute>,
    /// Until when the assertion could still be accepted (its latest `NotOnOrAfter` plus the
    /// skew): the replay cache must remember its id until then.
    pub replay_until: OffsetDateTime,
}

impl std::fmt::Debug for VerifiedAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedAssertion")
            .field("assertion_id", &self.assertion_id)
            .field("name_id", &"<redacted>")
            .field("attributes", &self.attributes)
            .field("replay_until", &self.replay_until)
            .finish_non_exhaustive()
    }
}

/// Verifies the HTTP-POST binding's `SAMLResponse` value and returns the identity it asserts.
///
/// In order: the value is at most [`crate::MAX_RESPONSE_BYTES`], strict base64, UTF-8, without
/// DOCTYPE; the XML is well-formed; the root is a `samlp:Response` of version 2.0 with status
/// Success; it holds exactly one `saml:Assertion` (as a direct child) and no encrypted one;
/// the signatures pass the XML-DSig profile (see `signature::verify`) and the Assertion's own
/// signature is among them; the Response's `Destination` is our ACS URL and its `Issuer`, if
/// any, the IdP; `InResponseTo` answers `expected`. Then, read only from the verified
/// Assertion: version, `Issuer`, `IssueInstant` not in the future, the whole `NameID` text,
/// a bearer `SubjectConfirmation` for our ACS URL within its time and answering `expected`,
/// `Conditions` in time with an `AudienceRestriction` naming our entity id and no unknown
/// condition, an `AuthnStatement`, and the attributes. Times allow [`CLOCK_SKEW`].
pub fn verify_response(
    form_value: &str,
    sp: &ServiceProvider,
    idp: &IdentityProvider,
    expected: &Expected,
    now: OffsetDateTime,
) -> Result<VerifiedAssertion, SamlError> {
    let xml = decode::response_xml(form_value)?;
    let doc = dom::parse(&xml)?;
    let response = doc.document_element().ok_or(SamlError::MalformedXml)?;
    if !dom::is(&doc, response, SAMLP, "Response")
        || dom::attr(&doc, response, "Version") != Some("2.0")
    {
        return Err(SamlError::Structure);
    }
    check_status(&doc, response)?;
    let assertion = only_assertion(&doc, response)?;
    signature::verify(&doc, &xml, response, assertion, &idp.certificates)?;
    let rules = Rules {
        sp,
        idp,
        expected,
        now,
    };
    check_response(&doc, response, &rules)?;
    read_assertion(&doc, assertion, &rules)
}

/// What a verified response is checked against.
struct Rules<'a> {
    sp: &'a ServiceProvider,
    idp: &'a IdentityProvider,
    expected: &'a Expected,
    now: OffsetDateTime,
}

fn check_status(doc: &Document<'_>, response: NodeId) -> Result<(), SamlError> {
    let status = dom::only_child(doc, response, SAMLP, "Status")?;
    let code = dom::only_child(doc, status, SAMLP, "StatusCode")?;
    if dom::attr(doc, code, "Value") != Some(SUCCESS) {
        return Err(SamlError::Status);
    }
    Ok(())
}

/// Exactly one `saml:Assertion` in the whole document, and it is a child of the Response: a
/// second one anywhere (in `Extensions`, inside a signature's `Object`, nested in the first) is
/// how every signature-wrapping variant smuggles the forged or the moved signed copy.
fn only_assertion(doc: &Document<'_>, response: NodeId) -> Result<NodeId, SamlError> {
    if !dom::all(doc, SAML, "EncryptedAssertion").is_empty() {
        return Err(SamlError::Structure);
    }
    match dom::all(doc, SAML, "Assertion").as_slice() {
        [one] if doc.parent(*one) == Some(response) => Ok(*one),
        _ => Err(SamlError::Structure),
    }
}

fn check_issuer(
    doc: &Document<'_>,
    issuer: NodeId,
    idp: &IdentityProvider,
) -> Result<(), SamlError> {
    let format_ok = dom::attr(doc, issuer, "Format").is_none_or(|f| f == ENTITY_FORMAT);
    if !format_ok || dom::whole_text(doc, issuer)? != idp.entity_id {
        return Err(SamlError::Issuer);
    }
    Ok(())
}

fn check_in_response_to(value: Option<&str>, expected: &Expected) -> Result<(), SamlError> {
    let answers = match expected {
        Expected::Answer { request_id } => value == Some(request_id.as_str()),
        Expected::Unsolicited => value.is_none(),
    };
    answers.then_some(()).ok_or(SamlError::InResponseTo)
}

fn check_response(
    doc: &Document<'_>,
    response: NodeId,
    rules: &Rules<'_>,
) -> Result<(), SamlError> {
    let (sp, idp, expected) = (rules.sp, rules.idp, rules.expected);
    if dom::attr(doc, response, "Destination") != Some(sp.acs_url.as_str()) {
        return Err(SamlError::Recipient);
    }
    if let Some(issuer) = dom::optional_child(doc, response, SAML, "Issuer")? {
        check_issuer(doc, issuer, idp)?;
    }
    check_in_response_to(dom::attr(doc, response, "InResponseTo"), expected)
}

fn time_attr(
    doc: &Document<'_>,
    node: NodeId,
    name: &str,
) -> Result<Option<OffsetDateTime>, SamlError> {
    dom::attr(doc, node, name)
        .map(|v| OffsetDateTime::parse(v, &Rfc3339).map_err(|_| SamlError::Structure))
        .transpose()
}

/// `NotBefore` (if any) is not after `now` + skew; `NotOnOrAfter` (if any) is after
/// `now` − skew. Returns `NotOnOrAfter`.
fn check_window(
    doc: &Document<'_>,
    node: NodeId,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, SamlError> {
    if time_attr(doc, node, "NotBefore")?.is_some_and(|t| t > now + CLOCK_SKEW) {
        return Err(SamlError::NotYetValid);
    }
    let not_on_or_after = time_attr(doc, node, "NotOnOrAfter")?;
    if not_on_or_after.is_some_and(|t| t <= now - CLOCK_SKEW) {
        return Err(SamlError::Expired);
    }
    Ok(not_on_or_after)
}

fn read_assertion(
    doc: &Document<'_>,
    assertion: NodeId,
    rules: &Rules<'_>,
) -> Result<VerifiedAssertion, SamlError> {
    let now = rules.now;
    if dom::attr(doc, assertion, "Version") != Some("2.0") {
        return Err(SamlError::Structure);
    }
    let assertion_id = dom::required_attr(doc, assertion, "ID")?.to_owned();
    let issued = time_attr(doc, assertion, "IssueInstant")?.ok_or(SamlError::Structure)?;
    if issued > now + CLOCK_SKEW {
        return Err(SamlError::NotYetValid);
    }
    check_issuer(
        doc,
        dom::only_child(doc, assertion, SAML, "Issuer")?,
        rules.idp,
    )?;
    let subject = dom::only_child(doc, assertion, SAML, "Subject")?;
    let name_id_node = dom::only_child(doc, subject, SAML, "NameID")?;
    let name_id = dom::whole_text(doc, name_id_node)?;
    if name_id.is_empty() {
        return Err(SamlError::Structure);
    }
    let confirmed_until = check_bearer(doc, subject, rules)?;
    let conditions_until = check_conditions(doc, assertion, rules)?;
    let session_index = check_authn_statement(doc, assertion, now)?;
    let replay_until =
        conditions_until.map_or(confirmed_until, |c| c.max(confirmed_until)) + CLOCK_SKEW;
    Ok(VerifiedAssertion {
        assertion_id,
        name_id,
        name_id_format: dom::attr(doc, name_id_node, "Format").map(str::to_owned),
        session_index,
        attributes: read_attributes(doc, assertion)?,
        replay_until,
    })
}

/// The bearer confirmations; the first that holds wins, else the first one's failure.
/// Returns its `NotOnOrAfter` (required for bearer confirmations).
fn check_bearer(
    doc: &Document<'_>,
    subject: NodeId,
    rules: &Rules<'_>,
) -> Result<OffsetDateTime, SamlError> {
    let mut first_failure = None;
    for confirmation in dom::children(doc, subject, SAML, "SubjectConfirmation") {
        if dom::attr(doc, confirmation, "Method") != Some(BEARER) {
            continue;
        }
        match check_confirmation_data(doc, confirmation, rules) {
            Ok(until) => return Ok(until),
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    Err(first_failure.unwrap_or(SamlError::SubjectConfirmation))
}

fn check_confirmation_data(
    doc: &Document<'_>,
    confirmation: NodeId,
    rules: &Rules<'_>,
) -> Result<OffsetDateTime, SamlError> {
    let data = dom::only_child(doc, confirmation, SAML, "SubjectConfirmationData")?;
    if dom::attr(doc, data, "Recipient") != Some(rules.sp.acs_url.as_str()) {
        return Err(SamlError::Recipient);
    }
    let until = check_window(doc, data, rules.now)?.ok_or(SamlError::SubjectConfirmation)?;
    check_in_response_to(dom::attr(doc, data, "InResponseTo"), rules.expected)?;
    Ok(until)
}

/// `Conditions` is required, in time, with at least one `AudienceRestriction`, each naming our
/// entity id; `OneTimeUse` is honoured by the replay cache and `ProxyRestriction` is moot
/// (we never pass assertions on); any other condition makes the assertion invalid.
fn check_conditions(
    doc: &Document<'_>,
    assertion: NodeId,
    rules: &Rules<'_>,
) -> Result<Option<OffsetDateTime>, SamlError> {
    let (sp, now) = (rules.sp, rules.now);
    let conditions = dom::only_child(doc, assertion, SAML, "Conditions")?;
    let until = check_window(doc, conditions, now)?;
    let mut restricted = false;
    for condition in dom::element_children(doc, conditions) {
        if dom::is(doc, condition, SAML, "AudienceRestriction") {
            let mut audiences = dom::children(doc, condition, SAML, "Audience").into_iter();
            let ours = audiences.try_fold(false, |found, a| {
                Ok::<_, SamlError>(found || dom::whole_text(doc, a)? == sp.entity_id)
            })?;
            if !ours {
                return Err(SamlError::Audience);
            }
            restricted = true;
        } else if !dom::is(doc, condition, SAML, "OneTimeUse")
            && !dom::is(doc, condition, SAML, "ProxyRestriction")
        {
            return Err(SamlError::UnknownCondition);
        }
    }
    if !restricted {
        return Err(SamlError::Audience);
    }
    Ok(until)
}

/// The SSO profile requires an `AuthnStatement`; its `SessionNotOnOrAfter`, if any, must not
/// have passed. Returns the first statement's `SessionIndex`.
fn check_authn_statement(
    doc: &Document<'_>,
    assertion: NodeId,
    now: OffsetDateTime,
) -> Result<Option<String>, SamlError> {
    let statements = dom::children(doc, assertion, SAML, "AuthnStatement");
    let first = *statements.first().ok_or(SamlError::Structure)?;
    for &statement in &statements {
        if time_attr(doc, statement, "SessionNotOnOrAfter")?.is_some_and(|t| t <= now - CLOCK_SKEW)
        {
            return Err(SamlError::Expired);
        }
    }
    Ok(dom::attr(doc, first, "SessionIndex").map(str::to_owned))
}

fn read_attributes(doc: &Document<'_>, assertion: NodeId) -> Result<Vec<Attribute>, SamlError> {
    let mut attributes = Vec::new();
    for statement in dom::children(doc, assertion, SAML, "AttributeStatement") {
        for attribute in dom::children(doc, statement, SAML, "Attribute") {
            let values = dom::children(doc, attribute, SAML, "AttributeValue")
                .into_iter()
                .map(|v| dom::whole_text(doc, v))
                .collect::<Result<_, _>>()?;
            attributes.push(Attribute {
                name: dom::required_attr(doc, attribute, "Name")?.to_owned(),
                values,
            });
        }
    }
    Ok(attributes)
}
