//! The route table of `/api`: one list that registers every handler and that the OpenAPI test
//! compares with the generated document, so the two cannot drift apart.

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{web, Route};

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
    cfg.service(scope.default_service(web::to(not_found_handler)));
}

/// The group-scoped integration info route, which must be registered before the proxy's
/// catch-all resource. Only GET is answered here; other methods fall through to the proxy.
pub fn integration_route() -> impl actix_web::dev::HttpServiceFactory {
    web::resource("/proxy/{group}/api/integration/info")
        .guard(actix_web::guard::Get())
        .wrap(from_fn(i18n::language))
        .route(web::get().to(integration::group_info))
}

async fn not_found_handler() -> actix_web::HttpResponse {
    not_found()
}
