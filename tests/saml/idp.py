"""A SAML 2.0 identity provider for the end-to-end suite (tests/tests/e2e/saml_idp.rs).

Valid responses come from PyPI `pysaml2`'s IdP (`saml2.server.Server`, signing with Debian's
`xmlsec1`): a real IdP implementation, independent of ours, so what `tracklayer serve` accepts
is what a deployed IdP sends. The attack responses are built with PyPI `signxml` (lxml +
cryptography), which lets a test sign exactly the document it means to tamper with. Both are
pinned in infra/requirements-test.txt. Subcommands, each printing one JSON object:

  keys DIR                   an IdP key pair and an attacker's, self-signed (RSA 2048)
  authn-request URL          reads our HTTP-Redirect AuthnRequest from the redirect URL
  response DIR --acs … --audience … --issuer … --name-id … [--in-response-to ID]
           [--variant valid|foreign_key|altered|wrong_audience|expired|unsigned|
                      duplicate_id|wrapped|comment_injected]
                             a base64 SAMLResponse (HTTP-POST binding) with a signed assertion

The attacks on a signature that verifies (each a class of known SAML bypasses):
  duplicate_id      a decoy element carrying the signed Assertion's ID in samlp:Extensions, so
                    an ID lookup may resolve to it (goxmldsig CVE-2020-15216, ruby-saml
                    CVE-2024-45409);
  wrapped           a forged, unsigned Assertion naming root@example.com placed before the moved
                    signed one (signature wrapping, XSW3 of Somorovsky et al.);
  comment_injected  the NameID `<name-id><!---->.evil.test`, signed as it stands: exclusive C14N
                    drops the comment, so the signed text is `<name-id>.evil.test` and reading
                    only the first text node would sign in `<name-id>` (Duo's 2018 class,
                    CVE-2017-11427 and siblings).
"""
import argparse
import base64
import copy
import datetime
import json
import sys
import urllib.parse
import uuid
import zlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner, methods

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
VARIANTS = (
    "valid", "foreign_key", "altered", "wrong_audience", "expired", "unsigned",
    "duplicate_id", "wrapped", "comment_injected",
)


def keys(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    for name in ("idp", "attacker"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.example.test")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        (out / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (out / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return {"certificate": (out / "idp.crt").read_text()}


def authn_request(url: str) -> dict:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0], validate=True), -15)
    root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    if root.tag != f"{{{SAMLP}}}AuthnRequest":
        raise SystemExit(f"not an AuthnRequest: {root.tag}")
    return {
        "id": root.get("ID"),
        "acs_url": root.get("AssertionConsumerServiceURL"),
        "issuer": root.findtext(f"{{{SAML}}}Issuer"),
        "relay_state": query.get("RelayState", [None])[0],
    }


XMLSEC1 = "/usr/bin/xmlsec1"


def pysaml2_response(a: argparse.Namespace) -> dict:
    """A valid response of pysaml2's IdP: the assertion signed (RSA-SHA256, exclusive C14N)."""
    from saml2.config import IdPConfig
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.server import Server

    if not Path(XMLSEC1).is_file():
        raise SystemExit(f"{XMLSEC1} is missing: apt-get install xmlsec1 (make test does)")
    sp_metadata = a.dir / f"sp-{uuid.uuid4().hex}.xml"
    sp_metadata.write_text(
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'entityID="{a.audience}"><md:SPSSODescriptor WantAssertionsSigned="true" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"<md:NameIDFormat>{NAMEID_FORMAT_EMAILADDRESS}</md:NameIDFormat>"
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        f'Location="{a.acs}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>'
    )
    config = IdPConfig()
    config.load({
        "entityid": a.issuer,
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [
                ("https://idp.example.test/sso", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"),
            ]},
            "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
            "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
        }},
        "key_file": str(a.dir / "idp.key"),
        "cert_file": str(a.dir / "idp.crt"),
        "xmlsec_binary": XMLSEC1,
        "metadata": {"local": [str(sp_metadata)]},
    })
    try:
        server = Server(config=config)
        out = server.create_authn_response(
            identity={"groups": ["tracklayer-editors"]},
            in_response_to=a.in_response_to,
            destination=a.acs,
            sp_entity_id=a.audience,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=a.name_id),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_assertion=True,
            sign_response=False,
            sign_alg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            digest_alg="http://www.w3.org/2001/04/xmlenc#sha256",
        )
    finally:
        sp_metadata.unlink()
    root = etree.fromstring(str(out).encode())
    assertion_id = root.find(f"{{{SAML}}}Assertion").get("ID")
    return {"saml_response": base64.b64encode(str(out).encode()).decode(),
            "assertion_id": assertion_id, "signed_by": "pysaml2"}


def response(a: argparse.Namespace) -> dict:
    if a.variant == "valid":
        return pysaml2_response(a)
    now = datetime.datetime.now(datetime.timezone.utc)
    if a.variant == "expired":
        now -= datetime.timedelta(hours=1)

    def at(minutes: int) -> str:
        return (now + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")

    irt = f' InResponseTo="{a.in_response_to}"' if a.in_response_to else ""
    audience = "https://sp.evil.test/metadata" if a.variant == "wrong_audience" else a.audience
    assertion_id = f"_a{uuid.uuid4().hex}"
    placeholder = "" if a.variant == "unsigned" else f'<ds:Signature xmlns:ds="{DS}" Id="placeholder"/>'
    name_id = f"{a.name_id}<!---->.evil.test" if a.variant == "comment_injected" else a.name_id
    xml = (
        f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_r{uuid.uuid4().hex}" '
        f'Version="2.0" IssueInstant="{at(0)}" Destination="{a.acs}"{irt}>'
        f"<saml:Issuer>{a.issuer}</saml:Issuer>"
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
        f'<saml:Assertion ID="{assertion_id}" Version="2.0" IssueInstant="{at(0)}">'
        f"<saml:Issuer>{a.issuer}</saml:Issuer>{placeholder}"
        '<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
        f"{name_id}</saml:NameID>"
        '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<saml:SubjectConfirmationData{irt} NotOnOrAfter="{at(5)}" Recipient="{a.acs}"/>'
        "</saml:SubjectConfirmation></saml:Subject>"
        f'<saml:Conditions NotBefore="{at(-1)}" NotOnOrAfter="{at(5)}">'
        f"<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>"
        "</saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{at(0)}" SessionIndex="_s{uuid.uuid4().hex}"><saml:AuthnContext>'
        "<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
        "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
        '<saml:AttributeStatement><saml:Attribute Name="groups">'
        "<saml:AttributeValue>tracklayer-editors</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>"
        "</saml:Assertion></samlp:Response>"
    )
    root = etree.fromstring(xml.encode())
    if a.variant != "unsigned":
        signer = "attacker" if a.variant == "foreign_key" else "idp"
        root = XMLSigner(
            method=methods.enveloped,
            signature_algorithm="rsa-sha256",
            digest_algorithm="sha256",
            c14n_algorithm=EXC_C14N,
        ).sign(
            root,
            key=(a.dir / f"{signer}.key").read_bytes(),
            cert=(a.dir / f"{signer}.crt").read_text(),
            reference_uri=assertion_id,
        )
    if a.variant == "duplicate_id":
        duplicate_id(root, assertion_id)
    elif a.variant == "wrapped":
        wrap(root)
    out = etree.tostring(root)
    if a.variant == "altered":
        # After signing: the signed NameID now names someone else.
        out = out.replace(f">{a.name_id}<".encode(), b">root@example.com<")
    return {"saml_response": base64.b64encode(out).decode(), "assertion_id": assertion_id}


def duplicate_id(root: etree._Element, assertion_id: str) -> None:
    """A decoy with the signed Assertion's ID in samlp:Extensions (after the Issuer, where the
    schema allows it), ahead of the Assertion in document order."""
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    decoy = etree.SubElement(extensions, "{urn:evil}Decoy", ID=assertion_id)
    decoy.text = "root@example.com"
    root.find(f"{{{SAML}}}Issuer").addnext(extensions)


def wrap(root: etree._Element) -> None:
    """A forged copy of the signed Assertion (no signature, another ID, root@example.com)
    placed where the signed one was, the signed one moved after it."""
    signed = root.find(f"{{{SAML}}}Assertion")
    forged = copy.deepcopy(signed)
    forged.remove(forged.find(f"{{{DS}}}Signature"))
    forged.set("ID", f"_f{uuid.uuid4().hex}")
    forged.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "root@example.com"
    signed.addprevious(forged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keys").add_argument("dir", type=Path)
    sub.add_parser("authn-request").add_argument("url")
    r = sub.add_parser("response")
    r.add_argument("dir", type=Path)
    for flag in ("--acs", "--audience", "--issuer", "--name-id"):
        r.add_argument(flag, required=True)
    r.add_argument("--in-response-to")
    r.add_argument("--variant", choices=VARIANTS, default="valid")
    a = parser.parse_args()
    if a.command == "keys":
        result = keys(a.dir)
    elif a.command == "authn-request":
        result = authn_request(a.url)
    else:
        result = response(a)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
