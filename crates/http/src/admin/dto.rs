//! The admin API's shared wire vocabulary: roles, regions, destination kinds, the serde
//! helpers of every feature's DTOs, and the problem document. Each feature's own wire types sit
//! next to its handlers (`workspace.rs`, `users.rs`, `keys.rs`, `destinations.rs`, …).
//!
//! Wire types mirror the control plane's views (`tracklayer_core::admin`) instead of deriving the
//! OpenAPI schema on the core types, so that the core keeps no HTTP or OpenAPI concern and the
//! documented schema is, by construction, the shape that is serialized: every response is built
//! from one of these types. Requests are parsed here into the core's domain types (parse, don't
//! validate); a rule the schema cannot express is left to the core and answers 422.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------
// Shared enums

/// A wire enum mirroring a core enum variant for variant, and `From` between them: the wire
/// type documents the schema, the core type stays free of HTTP and OpenAPI.
/// `enum Wire = Core { .. }` defines the wire enum too; `Wire = Core { .. }` converts both ways,
/// `From => To { .. }` one way.
macro_rules! mirror {
    ($(#[$m:meta])* $vis:vis enum $wire:ident = $core:ty { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        $vis enum $wire {
            $($(#[$vm])* $v,)+
        }
        $crate::admin::dto::mirror! { $wire = $core { $($v),+ } }
    };
    ($wire:ty = $core:ty { $($v:ident),+ $(,)? }) => {
        $crate::admin::dto::mirror! { $wire => $core { $($v),+ } }
        $crate::admin::dto::mirror! { $core => $wire { $($v),+ } }
    };
    ($from:ty => $to:ty { $($v:ident),+ $(,)? }) => {
        impl From<$from> for $to {
            fn from(v: $from) -> Self {
                match v {
                    $(<$from>::$v => Self::$v,)+
                }
            }
        }
    };
}
pub(crate) use mirror;

mirror! {
    /// An admin API role (whitepaper §04): `viewer` < `editor` < `admin`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Role = tl::keys::Role { Viewer, Editor, Admin }
}

mirror! {
    /// A residency region; fixed when the workspace is created.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Region = tl::workspace::Region { Us, Eu }
}

mirror! {
    /// A destination's vendor.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum DestinationKind = tl::destination::DestinationKind { MetaCapi, Ga4, Tiktok, Webhook, Snapchat, Pinterest, Reddit, MicrosoftAds, Segment, Linkedin, GoogleAds, Firehose }
}

pub(super) fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::serialize(t, s)
}

pub(super) fn rfc3339_opt<S: serde::Serializer>(
    t: &Option<OffsetDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::option::serialize(t, s)
}

/// An optional integer. JSON Schema counts `176.0` as an integer, so an integral float is one.
pub(super) fn integer<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    whole
        .and_then(|w| T::try_from(w).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not an integer in range")))
}

/// A nested object. serde would also read a struct from an array of its fields; the schema
/// says object, so an array is refused.
pub(super) fn object_only<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v @ Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom("invalid type: expected an object")),
    }
}

/// An optional RFC 3339 time (with the lowercase `t` and `z` RFC 3339 allows).
pub(super) fn rfc3339_in<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<OffsetDateTime>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => super::extract::parse_time(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 date-time")),
    }
}

/// `Some` for a given value, `None` when the field is absent; an explicit `null` is refused.
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
pub(super) fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An RFC 9457 problem: a stable `type`, a human `detail`, the field at fault.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem; stable.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    pub detail: String,
    /// The request field at fault (a body path such as `config.pixel_id`, or a parameter).
    pub field: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Path ids, documented once for every route that takes them (`params(DestinationId)`)

/// A path parameter `id`: its type name, its description and its pattern.
macro_rules! path_id {
    ($($name:ident: $description:literal, $pattern:literal;)*) => {$(
        #[derive(Debug, utoipa::IntoParams)]
        #[into_params(parameter_in = Path)]
        #[allow(dead_code)] // read by the OpenAPI document only; handlers take `extract::Id`
        pub struct $name {
            #[doc = $description]
            #[param(pattern = $pattern)]
            id: String,
        }
    )*};
}

path_id! {
    DestinationId: "The destination's id (`dst_…`)", "^dst_[a-z0-9]{1,40}$";
    UserId: "The user's id (`usr_…`)", "^usr_[a-z0-9]{1,64}$";
    KeyId: "The key's id", "^[a-z0-9]{16}$";
    SessionId: "The console session's id (`ses_…`)", "^ses_[a-z0-9]{1,64}$";
}
