//! The rules of the domain that the API's request fields follow, published
//! in the document: the domain's own patterns and lengths
//! (`domain::validate`) and the names it knows (scopes, tiers, methods,
//! capture modes), so that what the document allows is exactly what the
//! server takes. utoipa writes each field's type and description from the
//! handlers' types; `apply` adds the rule's keywords to it.

use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::domain::gateway::{METHODS, PATH_PATTERN, PATH_PATTERN_MAX, TIERS};
use crate::domain::validate::{
    EMAIL_MAX, EMAIL_PATTERN, HOST_MAX, HOST_PATTERN, HTTP_URL_PATTERN, LABEL_PATTERN, TEXT_PATTERN,
};

/// A rule a field follows.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// A slug or DNS label (`validate::label`).
    Label,
    /// A host name (`validate::host`).
    Host,
    /// Free text of 1 to this many characters (`validate::text`).
    Text(usize),
    /// An email address (`validate::email`).
    Email,
    /// An `http://` URL (`validate::http_url`).
    HttpUrl,
    /// A path to probe: `/`, then at most 511 characters, no control one.
    ProbePath,
    /// A route's path pattern (`gateway::PathPattern`).
    PathPattern,
    /// 8 to 1024 characters.
    Password,
    /// A service's id.
    ServiceId,
    /// A route's method.
    Method,
    /// A consumer's rate tier.
    Tier,
    /// One of these names.
    OneOf(&'static [&'static str]),
    /// A list of these names.
    ListOf(&'static [&'static str]),
    /// `true`, the only value the switch takes.
    OnlyTrue,
}

/// The key scopes.
const SCOPES: &[&str] = &["read", "manage", "admin"];

/// Which field of which request schema follows which rule.
const FIELDS: &[(&str, &str, Rule)] = &[
    ("CreateToken", "label", Rule::Text(crate::domain::MAX_LABEL)),
    ("CreateToken", "kind", Rule::OneOf(&["agent", "api"])),
    ("CreateToken", "scopes", Rule::ListOf(SCOPES)),
    ("PlanView", "name", Rule::Label),
    ("NewTenant", "slug", Rule::Label),
    ("NewTenant", "name", Rule::Text(100)),
    ("NewTenant", "tunnelBase", Rule::Host),
    ("NewService", "name", Rule::Text(80)),
    ("NewService", "tunnel", Rule::Label),
    ("NewService", "targetUrl", Rule::HttpUrl),
    ("NewService", "healthCheckPath", Rule::ProbePath),
    ("ServicePatch", "name", Rule::Text(80)),
    ("ServicePatch", "tunnel", Rule::Label),
    ("ServicePatch", "targetUrl", Rule::HttpUrl),
    ("ServicePatch", "healthCheckPath", Rule::ProbePath),
    ("NewRoute", "host", Rule::Host),
    ("NewRoute", "method", Rule::Method),
    ("NewRoute", "pathPattern", Rule::PathPattern),
    ("NewRoute", "serviceId", Rule::ServiceId),
    ("RoutePatch", "host", Rule::Host),
    ("RoutePatch", "method", Rule::Method),
    ("RoutePatch", "pathPattern", Rule::PathPattern),
    ("RoutePatch", "serviceId", Rule::ServiceId),
    ("NewConsumer", "name", Rule::Text(80)),
    ("NewConsumer", "rateLimitTier", Rule::Tier),
    ("Register", "name", Rule::Text(100)),
    ("Register", "email", Rule::Email),
    ("Register", "password", Rule::Password),
    ("Reset", "password", Rule::Password),
    (
        "TunnelPatch",
        "inspect",
        Rule::OneOf(&["off", "meta", "full"]),
    ),
    ("ErrorPatch", "resolved", Rule::OnlyTrue),
];

/// The JSON Schema keywords of `rule`.
fn keywords(rule: Rule) -> Value {
    let names = |names: Vec<&str>| json!({ "enum": names });
    match rule {
        Rule::Label => json!({ "pattern": LABEL_PATTERN }),
        Rule::Host => json!({ "pattern": HOST_PATTERN, "maxLength": HOST_MAX }),
        Rule::Text(max) => json!({ "pattern": TEXT_PATTERN, "minLength": 1, "maxLength": max }),
        Rule::Email => json!({ "pattern": EMAIL_PATTERN, "maxLength": EMAIL_MAX }),
        Rule::HttpUrl => json!({ "pattern": HTTP_URL_PATTERN }),
        Rule::ProbePath => {
            json!({ "pattern": "^/[^\\u0000-\\u001f\\u007f-\\u009f]*$", "maxLength": 512 })
        }
        Rule::PathPattern => {
            json!({ "pattern": PATH_PATTERN, "minLength": 1, "maxLength": PATH_PATTERN_MAX })
        }
        Rule::Password => json!({ "minLength": 8, "maxLength": 1024 }),
        Rule::ServiceId => json!({ "pattern": "^svc_" }),
        Rule::Method => names(METHODS.to_vec()),
        Rule::Tier => names(TIERS.iter().map(|(name, _)| *name).collect()),
        Rule::OneOf(list) => names(list.to_vec()),
        Rule::ListOf(list) => json!({ "items": { "type": "string", "enum": list } }),
        Rule::OnlyTrue => json!({ "enum": [true] }),
    }
}

/// Adds each field's rule to the document's schemas. A field that may be
/// null keeps taking null (an `enum` gains it). Returns the fields the
/// document does not have (none, unless a type was renamed).
pub fn apply(doc: &mut Value) -> Vec<String> {
    let mut missing = Vec::new();
    for (schema, field, rule) in FIELDS {
        let at = format!("/components/schemas/{schema}/properties/{field}");
        let Some(Value::Object(property)) = doc.pointer_mut(&at) else {
            missing.push(format!("{schema}.{field}"));
            continue;
        };
        let nullable = match property.get("type") {
            Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
            _ => false,
        };
        let Value::Object(add) = keywords(*rule) else {
            continue;
        };
        for (k, mut v) in add {
            if let (true, "enum", Value::Array(values)) = (nullable, k.as_str(), &mut v) {
                values.push(Value::Null);
            }
            property.insert(k, v);
        }
    }
    missing
}

/// Makes the object schema `name` take exactly one of `fields` as a
/// string (the others absent or null): a rule across fields, which a
/// field's own schema cannot say.
pub fn exactly_one_of(doc: &mut Value, name: &str, fields: &[&str]) {
    let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) else {
        return;
    };
    let branches: Vec<Value> = fields
        .iter()
        .map(|chosen| {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|f| {
                    let t = if f == chosen { "string" } else { "null" };
                    (f.to_string(), json!({ "type": t }))
                })
                .collect();
            json!({ "required": [chosen], "properties": properties })
        })
        .collect();
    schema["oneOf"] = Value::Array(branches);
}

/// Makes the object schema `name` take at most one of `fields` as a
/// string.
pub fn at_most_one_of(doc: &mut Value, name: &str, fields: &[&str]) {
    let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) else {
        return;
    };
    let strings: Map<String, Value> = fields
        .iter()
        .map(|f| (f.to_string(), json!({ "type": "string" })))
        .collect();
    schema["not"] = json!({ "required": fields, "properties": strings });
}

/// The schema of a gateway metrics period (a query parameter, whose
/// description lives on the parameter, so utoipa's `schema_with` keeps it).
pub fn period() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["1h", "24h", "7d"]))
        .build()
}
