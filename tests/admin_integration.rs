//! Integration info (global and group-scoped, authenticated by a proxy key) and the OpenAPI
//! document, which must list every registered route and which `gpt-load openapi` prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::{json, Value};
use support::{CredentialPosition, TestServer, AUTH, PROXY_KEY};

async fn group(t: &TestServer, name: &str, proxy_keys: &str, extra: Value) -> i64 {
    let mut body = json!({
        "name": name,
        "display_name": name.to_uppercase(),
        "channel_type": "openai",
        "test_model": "gpt-4o-mini",
        "upstreams": [{"url": t.mock.base_url(), "weight": 1}],
        "proxy_keys": proxy_keys,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, res) = t.post("/api/groups", body).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["data"]["id"].as_i64().unwrap()
}

async fn info(t: &TestServer, path: &str, key: Option<&str>) -> (StatusCode, Value) {
    let res = t
        .send(
            "GET",
            path,
            key.map(|k| (CredentialPosition::Query, k)),
            &[],
            None,
        )
        .await;
    (res.status, res.json())
}

#[actix_rt::test]
async fn global_info_lists_the_groups_a_proxy_key_may_use() {
    let t = TestServer::start(&[]).await;
    group(&t, "one", "sk-g1", json!({"sort": 2})).await;
    group(
        &t,
        "two",
        "sk-g2,sk-g1",
        json!({"sort": 1, "validation_endpoint": "/v1/custom/chat"}),
    )
    .await;
    group(&t, "three", "sk-g3", json!({"sort": 1})).await;

    let (status, body) = info(&t, "/api/integration/info", Some("sk-g1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!([
            {"name": "two", "display_name": "TWO", "channel_type": "custom", "path": "/proxy/two/v1/custom/chat"},
            {"name": "one", "display_name": "ONE", "channel_type": "openai", "path": "/proxy/one"},
        ])
    );
    // The global proxy keys (seeded from AUTH_KEY) reach every group, ordered sort asc, id desc.
    let (_, body) = info(&t, "/api/integration/info", Some(AUTH)).await;
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["three", "two", "one"]);
    // Bearer works too; the admin key is not required.
    let res = t
        .send(
            "GET",
            "/api/integration/info",
            Some((CredentialPosition::Bearer, "sk-g3")),
            &[],
            None,
        )
        .await;
    assert_eq!(res.json()["data"][0]["name"], "three");

    let (status, body) = info(&t, "/api/integration/info", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "VALIDATION_FAILED", "message": "Proxy key is required"})
    );
    let (status, body) = info(&t, "/api/integration/info", Some("sk-nobody")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Invalid or unauthorized proxy key");
    let res = t
        .send(
            "GET",
            "/api/integration/info",
            None,
            &[("Accept-Language", "zh-CN")],
            None,
        )
        .await;
    assert_eq!(
        res.json(),
        json!({"code": "VALIDATION_FAILED", "message": "需要代理密钥"})
    );
    t.stop().await;
}

#[actix_rt::test]
async fn group_scoped_info_is_answered_before_the_proxy() {
    let t = TestServer::start(&["sk-up"]).await;
    t.create_group("scoped", &["sk-up"], json!({})).await;
    group(
        &t,
        "custom",
        "sk-c",
        json!({"validation_endpoint": "/v2/chat"}),
    )
    .await;
    t.mock.clear_requests();

    let (status, body) = info(&t, "/proxy/scoped/api/integration/info", Some(PROXY_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!([{"name": "scoped", "display_name": "", "channel_type": "openai", "path": ""}])
    );
    let (_, body) = info(&t, "/proxy/custom/api/integration/info", Some("sk-c")).await;
    assert_eq!(body["data"][0]["channel_type"], "custom");
    assert_eq!(body["data"][0]["path"], "/v2/chat");
    let (status, _) = info(&t, "/proxy/custom/api/integration/info", Some(PROXY_KEY)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "another group's key");
    let (status, body) = info(&t, "/proxy/nope/api/integration/info", Some(PROXY_KEY)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": "NOT_FOUND", "message": "Group not found"})
    );
    let (status, _) = info(&t, "/proxy/scoped/api/integration/info", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(t.mock.total_requests(), 0, "nothing reached the upstream");

    // Other methods on that path are ordinary proxied requests.
    let res = t
        .send(
            "POST",
            "/proxy/scoped/api/integration/info",
            Some((CredentialPosition::Bearer, PROXY_KEY)),
            &[],
            Some(("application/json", b"{}".to_vec())),
        )
        .await;
    assert_eq!(t.mock.total_requests(), 1, "{}", res.text());
    t.stop().await;
}

#[actix_rt::test]
async fn openapi_document_lists_every_registered_route() {
    let doc = serde_json::to_value(gpt_load::admin::openapi::document()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let routes = gpt_load::admin::routes::api_routes();
    assert_eq!(
        routes.len(),
        42,
        "38 GPT-Load routes, the per-key status and cooldown-reset routes, the usage report, and \
         the document itself"
    );
    for route in &routes {
        let path = route.full_path();
        let method = route.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][&path][&method];
        assert!(
            op.is_object(),
            "{method} {path} is missing from the OpenAPI document"
        );
        assert!(
            op["responses"]["200"].is_object(),
            "{method} {path} documents its success"
        );
    }
    for (path, method) in [
        ("/health", "get"),
        ("/proxy/{group}/api/integration/info", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{path}");
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len() + 2,
        "nothing documented that is not served"
    );
    // Every referenced schema exists.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "missing schema {name}");
    }
    // Public routes say so; the rest inherit the admin key requirement.
    assert_eq!(
        doc["paths"]["/api/auth/login"]["post"]["security"],
        json!([{}])
    );
    assert!(doc["security"].as_array().unwrap().len() >= 4);
}

#[actix_rt::test]
async fn openapi_document_states_what_the_server_checks() {
    let doc = serde_json::to_value(gpt_load::admin::openapi::document()).unwrap();
    let schemas = &doc["components"]["schemas"];
    // Settings: one property per setting, typed, bounded, nothing else accepted.
    let update = &schemas["SettingsUpdate"];
    assert_eq!(update["additionalProperties"], false);
    assert_eq!(
        update["properties"].as_object().unwrap().len(),
        gpt_load_actors::settings::SETTINGS.len()
    );
    assert_eq!(update["properties"]["max_retries"]["type"], "integer");
    assert_eq!(update["properties"]["max_retries"]["minimum"], 0);
    assert_eq!(update["properties"]["max_retries"]["maximum"], 1_000_000);
    assert_eq!(
        update["properties"]["rate_limit_scope"]["enum"],
        json!(["model", "key"])
    );
    assert_eq!(
        update["properties"]["stream_include_usage"]["type"],
        "boolean"
    );
    assert_eq!(
        schemas["SettingItem"]["properties"]["value"]["$ref"],
        "#/components/schemas/SettingValue"
    );
    // Row ids are positive 64-bit integers wherever they are read.
    let delete = &doc["paths"]["/api/groups/{id}"]["delete"];
    assert_eq!(delete["parameters"][0]["schema"]["minimum"], 1);
    assert_eq!(delete["parameters"][0]["schema"]["maximum"], i64::MAX);
    assert_eq!(
        delete["responses"]["429"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    // The integration routes take a proxy key from each place the proxy reads one.
    let info = &doc["paths"]["/api/integration/info"]["get"]["security"];
    assert_eq!(info.as_array().unwrap().len(), 4, "{info}");
    assert!(doc["components"]["securitySchemes"]["proxy_key_x_goog_api_key"].is_object());
    // A standard group needs upstreams and a test model; an aggregate does not.
    let create = &schemas["GroupCreate"]["oneOf"];
    assert_eq!(
        create[0]["required"],
        json!(["name", "channel_type", "upstreams", "test_model"])
    );
}

#[actix_rt::test]
async fn openapi_document_is_served_to_admins() {
    let t = TestServer::start(&[]).await;
    t.assert_admin_auth("GET", "/api/openapi.json").await;
    let (status, body) = t.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["paths"]["/api/keys/add-async"]["post"]["requestBody"]["content"]
            ["multipart/form-data"]
            .is_object()
    );
    assert!(body["components"]["schemas"]["GroupResponse"].is_object());
    t.stop().await;
}

/// `gpt-load openapi` prints the same document without configuration or a database: the admin
/// UI's types are generated from it (`web-admin/scripts/gen-api.mjs`).
#[test]
fn the_openapi_command_prints_the_served_document() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpt-load"))
        .arg("openapi")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed,
        serde_json::to_value(gpt_load::admin::openapi::document()).unwrap()
    );
}
