//! The route table of `/api`: one list that registers every handler and that the OpenAPI test
//! compares with the generated document, so the two cannot drift apart.

use std::sync::OnceLock;

use actix_web::dev::ResourceDef;
use actix_web::http::header::LOCATION;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse, Route};

use super::{
    dashboard, group_ops, groups, i18n, integration, key_ops, keys, logs, openapi, settings,
    subgroups, system, tasks, usage,
};
use crate::http::error::not_found;

/// One route under `/api`.
pub struct ApiRoute {
    /// HTTP method.
    pub method: Method,
    /// Path below `/api`, in actix/OpenAPI template syntax (`/groups/{id}`).
    pub path: &'static str,
    make: fn() -> Route,
}

impl ApiRoute {
    /// The full path, `/api` included.
    pub fn full_path(&self) -> String {
        format!("/api{}", self.path)
    }
}

macro_rules! table {
    ($($method:ident $path:literal => $handler:path,)*) => {
        vec![$(ApiRoute {
            method: Method::$method,
            path: $path,
            make: || web::route().method(Method::$method).to($handler),
        },)*]
    };
}

/// Every `/api` route, static paths before templated ones that could shadow them.
pub fn api_routes() -> Vec<ApiRoute> {
    table! {
        POST "/auth/login" => system::login,
        GET "/integration/info" => integration::global_info,
        GET "/channel-types" => system::channel_types,
        POST "/groups" => groups::create,
        GET "/groups" => groups::list,
        GET "/groups/list" => groups::list_brief,
        GET "/groups/config-options" => group_ops::config_options,
        PUT "/groups/reorder" => group_ops::reorder,
        PUT "/groups/{id}" => groups::update,
        DELETE "/groups/{id}" => groups::delete,
        GET "/groups/{id}/stats" => group_ops::stats,
        POST "/groups/{id}/copy" => group_ops::copy,
        GET "/groups/{id}/sub-groups" => subgroups::list,
        POST "/groups/{id}/sub-groups" => subgroups::add,
        PUT "/groups/{id}/sub-groups/{sub_group_id}/weight" => subgroups::update_weight,
        DELETE "/groups/{id}/sub-groups/{sub_group_id}" => subgroups::remove,
        GET "/groups/{id}/parent-aggregate-groups" => subgroups::parents,
        GET "/keys" => keys::list,
        GET "/keys/export" => keys::export,
        POST "/keys/add-multiple" => key_ops::add_multiple,
        POST "/keys/add-async" => tasks::add_async,
        POST "/keys/delete-multiple" => key_ops::delete_multiple,
        POST "/keys/delete-async" => tasks::delete_async,
        POST "/keys/restore-multiple" => key_ops::restore_multiple,
        POST "/keys/restore-all-invalid" => key_ops::restore_all_invalid,
        POST "/keys/clear-all-invalid" => key_ops::clear_all_invalid,
        POST "/keys/clear-all" => key_ops::clear_all,
        POST "/keys/validate-group" => tasks::validate_group,
        POST "/keys/test-multiple" => key_ops::test_multiple,
        PUT "/keys/{id}/notes" => keys::update_notes,
        PUT "/keys/{id}/status" => keys::update_status,
        POST "/keys/{id}/reset-cooldown" => keys::reset_cooldown,
        GET "/tasks/status" => tasks::status,
        GET "/dashboard/stats" => dashboard::stats,
        GET "/dashboard/chart" => dashboard::chart,
        GET "/dashboard/encryption-status" => dashboard::encryption_status,
        GET "/logs" => logs::list,
        GET "/logs/export" => logs::export,
        GET "/usage" => usage::report,
        GET "/settings" => settings::list,
        PUT "/settings" => settings::update,
        GET "/openapi.json" => openapi::serve,
    }
}

/// Registers every `/api` route. Routes sharing a path become one resource whose other methods
/// answer GPT-Load's JSON 404, like unknown paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut grouped: Vec<(&'static str, Vec<Route>)> = Vec::new();
    for route in api_routes() {
        match grouped.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, routes)) => routes.push((route.make)()),
            None => grouped.push((route.path, vec![(route.make)()])),
        }
    }
    let mut scope = web::scope("/api").wrap(from_fn(i18n::language));
    for (path, routes) in grouped {
        let mut resource = web::resource(path);
        for route in routes {
            resource = resource.route(route);
        }
        scope = scope.service(resource.default_service(web::to(not_found_handler)));
    }
    cfg.service(scope.default_service(web::to(unmatched)));
}

/// Paths under `/api` that no route matches. Like gin's default `RedirectTrailingSlash` in
/// GPT-Load, a path that matches a route of the same method once its trailing slash is dropped
/// is redirected there (301 for GET, 307 otherwise so the body is sent again), query kept;
/// anything else is the JSON 404. (No route takes HEAD, in GPT-Load either, so HEAD is a 404.)
async fn unmatched(req: HttpRequest) -> HttpResponse {
    match slashless_target(&req) {
        Some(location) => {
            let status = if req.method() == Method::GET {
                StatusCode::MOVED_PERMANENTLY
            } else {
                StatusCode::TEMPORARY_REDIRECT
            };
            HttpResponse::build(status)
                .insert_header((LOCATION, location))
                .finish()
        }
        None => not_found(),
    }
}

fn slashless_target(req: &HttpRequest) -> Option<String> {
    static ROUTES: OnceLock<Vec<(Method, ResourceDef)>> = OnceLock::new();
    let trimmed = req.path().strip_suffix('/').filter(|p| !p.is_empty())?;
    let routes = ROUTES.get_or_init(|| {
        api_routes()
            .into_iter()
            .map(|r| (r.method.clone(), ResourceDef::new(r.full_path())))
            .collect()
    });
    routes
        .iter()
        .any(|(method, def)| method == req.method() && def.is_match(trimmed))
        .then(|| match req.query_string() {
            "" => trimmed.to_string(),
            query => format!("{trimmed}?{query}"),
        })
}

/// The group-scoped integration info route, registered inside the `/proxy` scope before the
/// proxy's catch-all. Only GET is answered here; other methods fall through to the proxy. The
/// path's suffix is checked first, by a guard on an empty scope: the `{group}` pattern compiles to
/// a regex, which would otherwise run on every proxied request (~2 % of its CPU, perf).
pub fn integration_route() -> impl actix_web::dev::HttpServiceFactory {
    web::scope("")
        .guard(actix_web::guard::fn_guard(|ctx| {
            ctx.head().method == actix_web::http::Method::GET
                && ctx.head().uri.path().ends_with(INTEGRATION_SUFFIX)
        }))
        .service(
            web::resource("/{group}/api/integration/info")
                .guard(actix_web::guard::Get())
                .wrap(from_fn(i18n::language))
                .route(web::get().to(integration::group_info)),
        )
}

const INTEGRATION_SUFFIX: &str = "/api/integration/info";

async fn not_found_handler() -> actix_web::HttpResponse {
    not_found()
}
