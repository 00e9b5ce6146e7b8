//! The schemas of the API's strings that follow a rule of the domain: the
//! domain's own patterns and lengths (`domain::validate`), the names it
//! knows (scopes, tiers, methods, capture modes), so that what the document
//! allows is exactly what the server takes. Handlers' types name these with
//! `#[schema(schema_with = …)]`.

use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::domain::gateway::{METHODS, PATH_PATTERN, PATH_PATTERN_MAX, TIERS};
use crate::domain::validate::{
    EMAIL_MAX, EMAIL_PATTERN, HOST_MAX, HOST_PATTERN, HTTP_URL_PATTERN, LABEL_PATTERN, TEXT_PATTERN,
};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A string or null.
fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// One of `names`.
fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> Object {
    string()
        .enum_values(Some(names.into_iter().map(str::to_string)))
        .build()
}

/// One of `names`, or null.
fn one_of_or_null<'a>(names: impl IntoIterator<Item = &'a str>) -> Object {
    let names = names
        .into_iter()
        .map(|n| serde_json::Value::from(n.to_string()));
    nullable_string()
        .enum_values(Some(names.chain([serde_json::Value::Null])))
        .build()
}

/// A slug or DNS label (`validate::label`).
pub fn label() -> Object {
    string().pattern(Some(LABEL_PATTERN)).build()
}

/// A tunnel name, or null.
pub fn label_or_null() -> Object {
    nullable_string().pattern(Some(LABEL_PATTERN)).build()
}

/// A host name (`validate::host`).
pub fn host() -> Object {
    string()
        .pattern(Some(HOST_PATTERN))
        .max_length(Some(HOST_MAX))
        .build()
}

/// A host name, or null.
pub fn host_or_null() -> Object {
    nullable_string()
        .pattern(Some(HOST_PATTERN))
        .max_length(Some(HOST_MAX))
        .build()
}

/// Free text of 1 to `max` characters without control characters.
fn text(max: usize) -> ObjectBuilder {
    string()
        .pattern(Some(TEXT_PATTERN))
        .min_length(Some(1))
        .max_length(Some(max))
}

/// Free text of 1–80 characters (`validate::text`).
pub fn text_80() -> Object {
    text(80).build()
}

/// Free text of 1–80 characters, or null.
pub fn text_80_or_null() -> Object {
    nullable_string()
        .pattern(Some(TEXT_PATTERN))
        .min_length(Some(1))
        .max_length(Some(80))
        .build()
}

/// Free text of 1–100 characters (`validate::text`).
pub fn text_100() -> Object {
    text(100).build()
}

/// Free text of 1–100 characters, or null.
pub fn text_100_or_null() -> Object {
    nullable_string()
        .pattern(Some(TEXT_PATTERN))
        .min_length(Some(1))
        .max_length(Some(100))
        .build()
}

/// A password: 8 to 1024 characters.
pub fn password() -> Object {
    string().min_length(Some(8)).max_length(Some(1024)).build()
}

/// An email address (`validate::email`).
pub fn email() -> Object {
    string()
        .pattern(Some(EMAIL_PATTERN))
        .max_length(Some(EMAIL_MAX))
        .build()
}

/// An `http://` URL, or null (`validate::http_url`).
pub fn http_url_or_null() -> Object {
    nullable_string().pattern(Some(HTTP_URL_PATTERN)).build()
}

/// A path to probe: `/`, then at most 511 characters, no control character.
pub fn probe_path_or_null() -> Object {
    nullable_string()
        .pattern(Some("^/[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
        .max_length(Some(512))
        .build()
}

/// A route's path pattern (`/literal/:param/*`).
pub fn path_pattern() -> Object {
    string()
        .pattern(Some(PATH_PATTERN))
        .min_length(Some(1))
        .max_length(Some(PATH_PATTERN_MAX))
        .build()
}

/// A route's path pattern, or null.
pub fn path_pattern_or_null() -> Object {
    nullable_string()
        .pattern(Some(PATH_PATTERN))
        .min_length(Some(1))
        .max_length(Some(PATH_PATTERN_MAX))
        .build()
}

/// A route's method.
pub fn method() -> Object {
    one_of(METHODS.iter().copied())
}

/// A route's method, or null.
pub fn method_or_null() -> Object {
    one_of_or_null(METHODS.iter().copied())
}

/// A consumer's rate tier, or null (`free`).
pub fn tier_or_null() -> Object {
    one_of_or_null(TIERS.iter().map(|(name, _)| *name))
}

/// Key scopes, or null (`["read"]`).
pub fn scopes_or_null() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(one_of(["read", "manage", "admin"]))
        .build()
}

/// A key's kind, or null (`agent`).
pub fn key_kind_or_null() -> Object {
    one_of_or_null(["agent", "api"])
}

/// A gateway metrics period.
pub fn period() -> Object {
    one_of(["1h", "24h", "7d"])
}

/// A tunnel's capture mode.
pub fn inspect_mode() -> Object {
    one_of(["off", "meta", "full"])
}

/// A service id (`svc_…`).
pub fn service_id() -> Object {
    string().pattern(Some("^svc_")).build()
}

/// A service id, or null.
pub fn service_id_or_null() -> Object {
    nullable_string().pattern(Some("^svc_")).build()
}

/// `true`, the only value some switches take.
pub fn only_true() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

/// Makes the object schema `name` take exactly one of `fields` as a
/// string (the others absent or null): a rule across fields, which a
/// field's own schema cannot say.
pub fn exactly_one_of(doc: &mut serde_json::Value, name: &str, fields: &[&str]) {
    let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) else {
        return;
    };
    let branches: Vec<serde_json::Value> = fields
        .iter()
        .map(|chosen| {
            let properties: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|f| {
                    let t = if f == chosen { "string" } else { "null" };
                    (f.to_string(), serde_json::json!({ "type": t }))
                })
                .collect();
            serde_json::json!({ "required": [chosen], "properties": properties })
        })
        .collect();
    schema["oneOf"] = serde_json::Value::Array(branches);
}

/// Makes the object schema `name` take at most one of `fields` as a
/// string.
pub fn at_most_one_of(doc: &mut serde_json::Value, name: &str, fields: &[&str]) {
    let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) else {
        return;
    };
    let strings: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|f| (f.to_string(), serde_json::json!({ "type": "string" })))
        .collect();
    schema["not"] = serde_json::json!({ "required": fields, "properties": strings });
}
