//! Single sign-on (admins): the SAML connection — the values to paste into the IdP, the form
//! for the IdP's side (through the admin API's `SamlConnectionBody`, so the same use case and
//! rules as `PUT /admin/v1/sso/saml`) — and the SCIM tokens (created through the keys' use
//! case, the secret shown once; revoked the same way).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{json, Value};
use tracklayer_core::admin::AdminError;
use tracklayer_core::keys::KeyKind;

use super::label;
use crate::admin::keys::{ApiKey, NewApiKey};
use crate::admin::saml::{SamlConnection, SamlConnectionBody};
use crate::console::csrf::{Action, Fields};
use crate::console::handler::form_again;
use crate::console::session::Me;
use crate::console::view::{see_other, when, Failure, Shell};
use crate::console::ConsoleState;

/// The form's values, as typed (shown again beside a refusal).
#[derive(Default)]
struct Form {
    idp_entity_id: String,
    sso_url: String,
    certificate: String,
    next_certificate: String,
    managed_domains: String,
    default_role: String,
    role_attribute: String,
    role_rules: String,
    idp_initiated: bool,
    enforce_sso: bool,
    /// The break-glass admin's user id: shown and sent back, so that saving the form never
    /// drops one set through the API.
    break_glass_user: String,
}

impl Form {
    fn of(c: &SamlConnection) -> Self {
        let c = &c.settings;
        let cert = |i: usize| c.certificates.get(i).cloned().unwrap_or_default();
        Self {
            idp_entity_id: c.idp_entity_id.clone(),
            sso_url: c.sso_url.clone(),
            certificate: cert(0),
            next_certificate: cert(1),
            managed_domains: c.managed_domains.join("\n"),
            default_role: c.default_role.as_ref().map(label).unwrap_or_default(),
            role_attribute: c.role_attribute.clone().unwrap_or_default(),
            role_rules: c
                .role_rules
                .iter()
                .map(|r| format!("{} = {}", r.value, label(&r.role)))
                .collect::<Vec<_>>()
                .join("\n"),
            idp_initiated: c.idp_initiated,
            enforce_sso: c.enforce_sso,
            break_glass_user: c.break_glass_user.clone().unwrap_or_default(),
        }
    }

    fn read(f: &Fields) -> Self {
        Self {
            idp_entity_id: f.get("idp_entity_id").into(),
            sso_url: f.get("sso_url").into(),
            certificate: f.get("certificate").into(),
            next_certificate: f.get("next_certificate").into(),
            managed_domains: f.get("managed_domains").into(),
            default_role: f.get("default_role").into(),
            role_attribute: f.get("role_attribute").into(),
            role_rules: f.get("role_rules").into(),
            idp_initiated: f.checked("idp_initiated"),
            enforce_sso: f.checked("enforce_sso"),
            break_glass_user: f.get("break_glass_user").into(),
        }
    }

    /// The admin API's body for these values; a line of the role mapping without `=` is a
    /// refusal naming `role_rules`.
    fn body(&self) -> Result<SamlConnectionBody, Failure> {
        let lines = |s: &str| -> Vec<String> {
            s.split(['\n', ','])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let rules = lines(&self.role_rules.replace(',', "\n"))
            .iter()
            .map(|l| match l.rsplit_once('=') {
                Some((value, role)) => Ok(json!({"value": value.trim(), "role": role.trim()})),
                None => Err(Failure::invalid(
                    "role_rules",
                    "write one rule a line: attribute value = viewer, editor or admin",
                )),
            })
            .collect::<Result<Vec<Value>, Failure>>()?;
        let certificates: Vec<&str> = [&self.certificate, &self.next_certificate]
            .into_iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .collect();
        let body = json!({
            "idp_entity_id": self.idp_entity_id,
            "sso_url": self.sso_url,
            "certificates": certificates,
            "managed_domains": lines(&self.managed_domains),
            "default_role": Some(&self.default_role).filter(|r| !r.is_empty()),
            "role_attribute": Some(&self.role_attribute).filter(|r| !r.is_empty()),
            "role_rules": rules,
            "idp_initiated": self.idp_initiated,
            "enforce_sso": self.enforce_sso,
            "break_glass_user": Some(self.break_glass_user.trim()).filter(|u| !u.is_empty()),
        });
        serde_json::from_value(body).map_err(|e| Failure::invalid("role_rules", e.to_string()))
    }
}

/// One SCIM token of the list.
struct Token {
    id: String,
    name: String,
    prefix: String,
    expires: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "console/sso.html")]
struct Sso {
    shell: Shell,
    configured: bool,
    updated: String,
    sp_entity_id: String,
    acs_url: String,
    metadata_url: String,
    scim_url: String,
    form: Form,
    /// A refused field of the form (`certificates[1]`, `sso_url`, ...) and why.
    field: String,
    error: String,
    tokens: Vec<Token>,
    /// A SCIM token just created: its secret, shown once.
    secret: Option<String>,
}

impl Sso {
    /// The error of `name` (a form field: `certificates` covers `certificates[0]`).
    fn error_of(&self, name: &str) -> Option<&str> {
        let f = self.field.as_str();
        let hit = match name {
            "certificate" => f == "certificates" || f == "certificates[0]",
            "next_certificate" => f == "certificates[1]",
            other => f == other || f.starts_with(&format!("{other}[")),
        };
        hit.then_some(self.error.as_str())
    }

    /// An error of no field of the form, shown above it.
    fn general_error(&self) -> Option<&str> {
        const FIELDS: [&str; 9] = [
            "certificate",
            "next_certificate",
            "idp_entity_id",
            "sso_url",
            "managed_domains",
            "default_role",
            "role_attribute",
            "role_rules",
            "enforce_sso",
        ];
        (!self.error.is_empty() && FIELDS.iter().all(|f| self.error_of(f).is_none()))
            .then_some(self.error.as_str())
    }
}

/// The page as stored now, or with the form as typed.
async fn sso(s: &ConsoleState, me: &Me, typed: Option<Form>) -> Result<Sso, Failure> {
    let base = s.base_url(&me.principal);
    let ws = &me.principal.workspace_id;
    let connection = match s.admin().saml_connection(&me.principal).await {
        Ok(c) => Some(SamlConnection::new(c, base)),
        Err(AdminError::NotFound(_)) => None,
        Err(e) => return Err(Failure::of(s, e)),
    };
    let keys = s
        .admin()
        .keys(&me.principal)
        .await
        .map_err(|e| Failure::of(s, e))?;
    let now = time::OffsetDateTime::now_utc();
    let tokens = keys
        .into_iter()
        .filter(|k| k.kind == KeyKind::Scim && k.revoked_at.is_none() && k.expires_at > now)
        .map(ApiKey::from)
        .map(|k| Token {
            expires: when(k.expires_at),
            last_used: k.last_used_at.map_or("never".into(), when),
            id: k.id,
            name: k.name,
            prefix: k.prefix,
        })
        .collect();
    let sp_entity_id = tracklayer_core::saml::entity_id(base, ws);
    Ok(Sso {
        shell: Shell::new(me, "sso", "Single sign-on"),
        configured: connection.is_some(),
        updated: connection
            .as_ref()
            .map(|c| when(c.updated_at))
            .unwrap_or_default(),
        acs_url: tracklayer_core::saml::acs_url(base, ws),
        metadata_url: sp_entity_id.clone(),
        sp_entity_id,
        scim_url: format!("{}/scim/v2", base.trim_end_matches('/')),
        form: typed
            .or_else(|| connection.as_ref().map(Form::of))
            .unwrap_or_default(),
        field: String::new(),
        error: String::new(),
        tokens,
        secret: None,
    })
}

/// `GET /settings/sso`.
pub async fn show(State(s): State<ConsoleState>, me: Me, Query(q): Query<super::Done>) -> Response {
    crate::console::view::done_page(sso(&s, &me, None).await, q.done.as_deref(), |v| {
        &mut v.shell
    })
}

/// `POST /settings/sso`: saves the connection; a refused field is shown beside it.
pub async fn save(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let typed = Form::read(&form);
    let saved = match typed.body() {
        Ok(body) => s
            .admin()
            .put_saml_connection(&me.principal, body.settings())
            .await
            .map_err(|e| Failure::of(&s, e)),
        Err(f) => Err(f),
    };
    match saved {
        Ok(_) => see_other("/settings/sso?done=sso-saved"),
        Err(f) => {
            form_again(f, sso(&s, &me, Some(typed)), |view, f| {
                view.field = f.field.clone().unwrap_or_default();
                view.error = f.detail.clone();
            })
            .await
        }
    }
}

/// `POST /settings/sso/scim-tokens`: a new SCIM token, its secret shown once.
pub async fn create_token(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let request: NewApiKey = match serde_json::from_value(json!({
        "kind": "scim",
        "name": form.opt("name").unwrap_or_else(|| "SCIM".into()),
    })) {
        Ok(r) => r,
        Err(e) => return Failure::invalid("name", e.to_string()).page(),
    };
    let created = match s.admin().create_key(&me.principal, request.into()).await {
        Ok(c) => c,
        Err(e) => return Failure::of(&s, e).page(),
    };
    match sso(&s, &me, None).await {
        Ok(mut view) => {
            use secrecy::ExposeSecret;
            view.secret = Some(created.secret.expose_secret().to_owned());
            crate::console::view::page(&view)
        }
        Err(f) => f.page(),
    }
}

/// `POST /settings/sso/scim-tokens/{id}/revoke`.
pub async fn revoke_token(
    State(s): State<ConsoleState>,
    Path(id): Path<String>,
    Action { me, .. }: Action,
) -> Response {
    match s.admin().revoke_key(&me.principal, &id).await {
        Ok(_) => see_other("/settings/sso?done=scim-revoked"),
        Err(e) => Failure::of(&s, e).page(),
    }
}
