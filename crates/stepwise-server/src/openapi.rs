//! The OpenAPI document, generated from the same router the server runs.
//!
//! Each handler declares its path, parameters, body and the answers particular to it
//! (`#[utoipa::path]`), and the routes are registered through `utoipa_axum`, so a
//! route cannot exist without its description. The answers every route shares are
//! added here from what the route is: any route needing a token can answer 401 and
//! 403 ([`required_scope`], the same function the auth layer asks); a route with a
//! body can answer 400, 413, 415 and 422; with query parameters 400 and 422; with path
//! parameters 400; every
//! route 405 for another method and 500/503 when the database fails. Every error
//! has the [`ErrorBody`] schema.

use crate::auth::required_scope;
use crate::schema::ErrorBody;
use axum::http::Method;
use std::sync::OnceLock;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stepwise",
        description = "A durable workflow engine on the database you already run. \
            Every route but `/healthz`, `/readyz` and `/v1/callbacks/{token}` (whose token \
            is its credential) needs `Authorization: Bearer TOKEN` \
            (`stepwise tokens create --scope read|write|admin`): `read` for every GET, \
            `write` to start, cancel and retry runs and groups and to send signals, \
            `admin` for the rest. \
            Every error is `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "runs", description = "Start, list, inspect, cancel and retry runs"),
        (name = "workflows", description = "Register workflow files"),
        (name = "groups", description = "Sealed batches of runs that complete exactly once"),
        (name = "flow", description = "Queues, concurrency keys, rate limits and resource locks"),
        (name = "schedules", description = "Schedules: list them; pause, resume, trigger and backfill one"),
        (name = "events", description = "The lifecycle event feed (transactional outbox)"),
        (name = "meta", description = "Health, workers, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole document: the routes' own descriptions and the shared answers.
pub fn document() -> Document {
    let (_, mut api) = crate::routes::all()
        .merge(crate::metrics::routes())
        .split_for_parts();
    api.merge(ApiDoc::openapi());
    api.info = ApiDoc::openapi().info;
    for (path, item) in api.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                add_shared_answers(&method, path, operation);
            }
        }
    }
    add_links(&mut api);
    api
}

/// utoipa 5.5 writes a link's fields in snake_case (`operation_id`); the
/// specification (and every client) reads `operationId`, `operationRef` and
/// `requestBody`.
fn camel_case_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|r| r.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(from) {
                    link.insert(to.to_string(), value);
                }
            }
        }
    }
}

/// OpenAPI links: what an answer's fields let a client do next (the run just
/// started can be shown, explained, cancelled...). Clients that follow links, such
/// as schemathesis' stateful phase, then reach real runs, locks and groups.
fn add_links(api: &mut Document) {
    use utoipa::openapi::link::LinkBuilder;
    for source in LINKS {
        let Some(item) = api.paths.paths.get_mut(source.path) else {
            continue;
        };
        let operation = item
            .post
            .as_mut()
            .filter(|o| o.operation_id.as_deref() == Some(source.operation));
        let Some(operation) = operation else { continue };
        for status in source.statuses {
            let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
                continue;
            };
            for target in source.targets {
                let mut link = LinkBuilder::new().operation_id(*target);
                for (name, value) in source.parameters {
                    // `release` alone takes the token.
                    if *name == "token" && *target != "release" {
                        continue;
                    }
                    link = link.parameter(*name, *value);
                }
                response
                    .links
                    .insert((*target).to_string(), RefOr::T(link.build()));
            }
        }
    }
}

/// An operation whose answer names something other operations take.
struct LinkSource {
    path: &'static str,
    operation: &'static str,
    statuses: &'static [&'static str],
    /// Parameter name, and where in the answer its value is.
    parameters: &'static [(&'static str, &'static str)],
    targets: &'static [&'static str],
}

const LINKS: &[LinkSource] = &[
    LinkSource {
        path: "/v1/runs",
        operation: "start",
        statuses: &["200", "201"],
        parameters: &[("id", "$response.body#/id")],
        targets: &["show", "explain", "cancel", "retry", "logs", "signal_run"],
    },
    LinkSource {
        path: "/v1/runs",
        operation: "start",
        statuses: &["200", "201"],
        parameters: &[
            ("id", "$response.body#/id"),
            ("step", "$response.body#/steps/0/name"),
        ],
        targets: &["step_items"],
    },
    LinkSource {
        path: "/v1/locks/{key}",
        operation: "acquire",
        statuses: &["200"],
        parameters: &[
            ("key", "$response.body#/key"),
            ("token", "$response.body#/token"),
        ],
        targets: &["release", "force_release"],
    },
    LinkSource {
        path: "/v1/schedules/{name}/trigger",
        operation: "trigger_schedule",
        statuses: &["200", "201"],
        parameters: &[("id", "$response.body#/run_id")],
        targets: &["show", "explain"],
    },
    LinkSource {
        path: "/v1/schedules/{name}/pause",
        operation: "pause_schedule",
        statuses: &["200"],
        parameters: &[("name", "$response.body#/spec/name")],
        targets: &["resume_schedule", "trigger_schedule", "backfill_schedule"],
    },
    LinkSource {
        path: "/v1/schedules/{name}/resume",
        operation: "resume_schedule",
        statuses: &["200"],
        parameters: &[("name", "$response.body#/spec/name")],
        targets: &["pause_schedule"],
    },
    LinkSource {
        path: "/v1/limits/{key}/pause",
        operation: "pause_limit",
        statuses: &["200"],
        parameters: &[("key", "$response.body#/key")],
        targets: &["resume_limit", "set_limit"],
    },
    LinkSource {
        path: "/v1/groups",
        operation: "create_group",
        statuses: &["201"],
        parameters: &[("name", "$response.body#/group/name")],
        targets: &["group"],
    },
];

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut value = serde_json::to_value(document()).unwrap_or_else(
            |e| serde_json::json!({"error": {"code": "openapi", "message": e.to_string()}}),
        );
        camel_case_links(&mut value);
        serde_json::to_string_pretty(&value).unwrap_or_default()
    })
}

fn add_shared_answers(method: &Method, path: &str, operation: &mut Operation) {
    let mut answers: Vec<(&str, String)> = Vec::new();
    match required_scope(method, path) {
        Some(scope) => {
            operation.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            answers.push((
                "401",
                "No token, or one that is unknown, expired or revoked".into(),
            ));
            answers.push((
                "403",
                format!(
                    "The token's scope is too low: this needs `{}`",
                    scope.as_str()
                ),
            ));
        }
        None => operation.security = Some(Vec::new()),
    }
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    if operation.request_body.is_some() {
        answers.push(("400", "The body is not valid JSON (or not UTF-8)".into()));
        answers.push(("413", "The body is larger than the server accepts".into()));
        answers.push(("415", "The body's Content-Type is not one listed".into()));
        answers.push((
            "422",
            "The body does not fit: a missing or unknown field, or a wrong type".into(),
        ));
    }
    if parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query))
    {
        answers.push((
            "400",
            "An unknown query parameter, or a value of the wrong type".into(),
        ));
        answers.push(("422", "A query value out of its range".into()));
    }
    if parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path))
    {
        answers.push(("400", "A path segment that is not valid".into()));
    }
    answers.push(("405", "The path does not serve this method".into()));
    if path != "/healthz" {
        answers.push(("500", "The database failed; see the server log".into()));
        answers.push((
            "503",
            "The database does not answer, or its schema is of another version".into(),
        ));
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_answer(&description)));
    }
}

fn error_answer(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
