//! Request rewrites configured on a group: parameter overrides, model redirects and header rules.

use std::collections::HashMap;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use gpt_load_actors::domain::HeaderRule;
use serde_json::{Map, Value};

/// Sets every override key at the top level of a JSON object body. Other bodies pass unchanged.
pub fn apply_param_overrides(body: Bytes, overrides: &Value) -> Bytes {
    let Some(overrides) = overrides.as_object().filter(|o| !o.is_empty()) else {
        return body;
    };
    match serde_json::from_slice::<Map<String, Value>>(&body) {
        Ok(mut object) => {
            for (k, v) in overrides {
                object.insert(k.clone(), v.clone());
            }
            serde_json::to_vec(&object).map(Bytes::from).unwrap_or(body)
        }
        Err(_) => body,
    }
}

/// Adds `stream_options.include_usage: true` to a JSON object body that does not set it (a
/// client's explicit `false` is kept). Other bodies pass unchanged, byte for byte.
pub fn add_include_usage(body: Bytes) -> Bytes {
    let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        return body;
    };
    let options = object
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(options) = options.as_object_mut() else {
        return body;
    };
    if options.contains_key("include_usage") {
        return body;
    }
    options.insert("include_usage".into(), Value::Bool(true));
    serde_json::to_vec(&object).map(Bytes::from).unwrap_or(body)
}

/// What a model redirect decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    /// Nothing to change.
    Keep,
    /// Send this body instead (JSON `model` replaced).
    Body(Bytes),
    /// Send to this path instead (Gemini native `models/{model}` replaced).
    Path(String),
    /// Strict mode and the model is not listed.
    Reject(String),
}

/// Applies redirect rules to the model of a JSON body. Bodies that are empty, not JSON objects or
/// have no string `model` are never rejected; an empty rule map enforces nothing.
pub fn redirect_body(body: &Bytes, rules: &HashMap<String, String>, strict: bool) -> Redirect {
    if rules.is_empty() {
        return Redirect::Keep;
    }
    let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(body) else {
        return Redirect::Keep;
    };
    let Some(model) = object
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Redirect::Keep;
    };
    match rules.get(&model) {
        Some(target) => {
            object.insert("model".into(), Value::String(target.clone()));
            match serde_json::to_vec(&object) {
                Ok(bytes) => Redirect::Body(Bytes::from(bytes)),
                Err(_) => Redirect::Keep,
            }
        }
        None if strict => Redirect::Reject(model),
        None => Redirect::Keep,
    }
}

/// Applies redirect rules to a Gemini native path's model segment, keeping the `:method` suffix.
pub fn redirect_path(
    path: &str,
    model: &str,
    rules: &HashMap<String, String>,
    strict: bool,
) -> Redirect {
    if rules.is_empty() {
        return Redirect::Keep;
    }
    match rules.get(model) {
        Some(target) => Redirect::Path(path.replacen(
            &format!("models/{model}"),
            &format!("models/{target}"),
            1,
        )),
        None if strict => Redirect::Reject(model.to_string()),
        None => Redirect::Keep,
    }
}

/// Values header rules may use.
pub struct RuleContext<'a> {
    pub client_ip: &'a str,
    pub group_name: &'a str,
    pub api_key: &'a str,
}

/// Applies a group's header rules (`set` with variables, `remove`), in order, after key injection,
/// so a rule may override or remove the injected credential.
pub fn apply_header_rules(headers: &mut HeaderMap, rules: &[HeaderRule], ctx: &RuleContext<'_>) {
    if rules.is_empty() {
        return;
    }
    let now = chrono::Utc::now();
    for rule in rules {
        let Ok(name) = HeaderName::from_bytes(rule.key.as_bytes()) else {
            continue;
        };
        match rule.action.as_str() {
            "remove" => {
                headers.remove(&name);
            }
            "set" => {
                let value = rule
                    .value
                    .replace("${CLIENT_IP}", ctx.client_ip)
                    .replace("${GROUP_NAME}", ctx.group_name)
                    .replace("${API_KEY}", ctx.api_key)
                    .replace("${TIMESTAMP_MS}", &now.timestamp_millis().to_string())
                    .replace("${TIMESTAMP_S}", &now.timestamp().to_string());
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            _ => {}
        }
    }
}

/// Rewrites a model-list reply (`{"data": [...]}` OpenAI style or `{"models": [...]}` Gemini style)
/// to show the redirect sources: strict lists only them, loose adds them to the upstream's list.
/// `first_page` is false for Gemini's later pages, which loose mode leaves untouched.
pub fn rewrite_model_list(
    body: &[u8],
    rules: &HashMap<String, String>,
    strict: bool,
    first_page: bool,
) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let mut sources: Vec<&String> = rules.keys().collect();
    sources.sort();
    let object = value.as_object_mut()?;
    if let Some(Value::Array(list)) = object.get_mut("data") {
        let entry = |id: &str| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "system"});
        if strict {
            *list = sources.iter().map(|s| entry(s)).collect();
        } else {
            let present: Vec<String> = list
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            list.extend(
                sources
                    .iter()
                    .filter(|s| !present.contains(s))
                    .map(|s| entry(s)),
            );
        }
    } else if let Some(Value::Array(list)) = object.get_mut("models") {
        let entry = |id: &str| serde_json::json!({"name": format!("models/{id}"), "displayName": id, "supportedGenerationMethods": ["generateContent"]});
        if strict {
            *list = sources.iter().map(|s| entry(s)).collect();
            object.remove("nextPageToken");
        } else if first_page {
            let present: Vec<String> = list
                .iter()
                .filter_map(|m| m.get("name").and_then(Value::as_str))
                .map(|n| n.trim_start_matches("models/").to_string())
                .collect();
            list.extend(
                sources
                    .iter()
                    .filter(|s| !present.contains(s))
                    .map(|s| entry(s)),
            );
        }
    }
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> HashMap<String, String> {
        HashMap::from([("fast".to_string(), "gpt-4o-mini".to_string())])
    }

    #[test]
    fn overrides_replace_top_level_fields_of_json_objects_only() {
        let body = Bytes::from_static(br#"{"model":"m","temperature":1}"#);
        let out = apply_param_overrides(body, &json!({"temperature": 0.2, "top_p": 1}));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"model": "m", "temperature": 0.2, "top_p": 1}));
        let raw = Bytes::from_static(b"not json");
        assert_eq!(apply_param_overrides(raw.clone(), &json!({"a": 1})), raw);
    }

    #[test]
    fn redirects_rewrite_known_models_and_strict_rejects_others() {
        let body = Bytes::from_static(br#"{"model":"fast","messages":[]}"#);
        match redirect_body(&body, &rules(), false) {
            Redirect::Body(b) => assert_eq!(
                serde_json::from_slice::<Value>(&b).unwrap()["model"],
                "gpt-4o-mini"
            ),
            other => panic!("{other:?}"),
        }
        let other = Bytes::from_static(br#"{"model":"gpt-5"}"#);
        assert_eq!(redirect_body(&other, &rules(), false), Redirect::Keep);
        assert_eq!(
            redirect_body(&other, &rules(), true),
            Redirect::Reject("gpt-5".into())
        );
        assert_eq!(
            redirect_body(&other, &HashMap::new(), true),
            Redirect::Keep,
            "empty rules enforce nothing"
        );
        assert_eq!(
            redirect_body(&Bytes::from_static(b"[1]"), &rules(), true),
            Redirect::Keep
        );
        assert_eq!(
            redirect_path(
                "/v1beta/models/fast:generateContent",
                "fast",
                &rules(),
                true
            ),
            Redirect::Path("/v1beta/models/gpt-4o-mini:generateContent".into())
        );
    }

    #[test]
    fn header_rules_set_with_variables_and_remove() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-drop"),
            HeaderValue::from_static("1"),
        );
        let rules = vec![
            HeaderRule {
                key: "X-Drop".into(),
                value: String::new(),
                action: "remove".into(),
            },
            HeaderRule {
                key: "X-Who".into(),
                value: "${GROUP_NAME}@${CLIENT_IP}".into(),
                action: "set".into(),
            },
            HeaderRule {
                key: "X-Ts".into(),
                value: "${TIMESTAMP_S}".into(),
                action: "set".into(),
            },
        ];
        apply_header_rules(
            &mut headers,
            &rules,
            &RuleContext {
                client_ip: "1.2.3.4",
                group_name: "g",
                api_key: "k",
            },
        );
        assert!(headers.get("x-drop").is_none());
        assert_eq!(headers.get("x-who").unwrap(), "g@1.2.3.4");
        assert!(headers
            .get("x-ts")
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<i64>()
            .is_ok());
    }

    #[test]
    fn model_lists_follow_the_mode() {
        let openai = br#"{"object":"list","data":[{"id":"gpt-4o-mini"}]}"#;
        let strict: Value =
            serde_json::from_slice(&rewrite_model_list(openai, &rules(), true, true).unwrap())
                .unwrap();
        assert_eq!(
            strict["data"],
            json!([{"id": "fast", "object": "model", "created": 0, "owned_by": "system"}])
        );
        let loose: Value =
            serde_json::from_slice(&rewrite_model_list(openai, &rules(), false, true).unwrap())
                .unwrap();
        assert_eq!(loose["data"].as_array().unwrap().len(), 2);
        let gemini = br#"{"models":[{"name":"models/gemini-2.0-flash"}],"nextPageToken":"t"}"#;
        let strict: Value =
            serde_json::from_slice(&rewrite_model_list(gemini, &rules(), true, true).unwrap())
                .unwrap();
        assert_eq!(strict["models"][0]["name"], "models/fast");
        assert!(strict.get("nextPageToken").is_none());
        let later: Value =
            serde_json::from_slice(&rewrite_model_list(gemini, &rules(), false, false).unwrap())
                .unwrap();
        assert_eq!(later["models"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn include_usage_is_added_only_when_missing() {
        let added = add_include_usage(Bytes::from_static(br#"{"model":"m","stream":true}"#));
        let v: Value = serde_json::from_slice(&added).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "m");
        let merged = add_include_usage(Bytes::from_static(
            br#"{"stream":true,"stream_options":{"x":1}}"#,
        ));
        let v: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"x": 1, "include_usage": true})
        );
        for kept in [
            &br#"{"stream":true,"stream_options":{"include_usage":false}}"#[..],
            br#"{"stream":true, "stream_options": {"include_usage": true}}"#,
            br#"{"stream":true,"stream_options":null}"#,
            b"not json",
            b"[1]",
        ] {
            let body = Bytes::copy_from_slice(kept);
            let out = add_include_usage(body.clone());
            assert_eq!(out, body, "{}", String::from_utf8_lossy(kept));
        }
    }
}
