//! The console's pages, one module per area.

pub mod audit;
pub mod auth;
pub mod cors;
pub mod destination_form;
pub mod destination_kinds;
pub mod destinations;
pub mod events;
pub mod keys;
pub mod overview;
pub mod privacy;
pub mod settings;
pub mod sso;
pub mod sso_sign_in;
pub mod users;

/// The wire name of an enum value (`meta_capi`, `delivered`): what the admin API says.
pub fn label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A role named in a form, read as the admin API reads it.
pub fn role(
    value: &str,
    field: &str,
) -> Result<tracklayer_core::keys::Role, crate::console::view::Failure> {
    serde_json::from_value::<crate::admin::dto::Role>(serde_json::Value::String(value.into()))
        .map(Into::into)
        .map_err(|_| {
            crate::console::view::Failure::invalid(field, "must be viewer, editor or admin")
        })
}

/// The `?done=` of a page loaded after an action (its notice).
#[derive(Debug, serde::Deserialize)]
pub struct Done {
    done: Option<String>,
}
