//! Request dispatch: key extraction, routing, scripted behaviours and the normal replies.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, ContentType};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;

use crate::formats::{self, Ctx, Flavor};
use crate::sse::{self, StreamKind};
use crate::state::{Behavior, State};

/// How long `Behavior::Hang` keeps a request open.
const HANG: Duration = Duration::from_secs(3600);

/// The fields of a request body the mock cares about.
#[derive(Deserialize)]
struct ReqBody<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// OpenAI's `stream_options`.
#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// A recognised endpoint.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    OpenAiChat,
    OpenAiModels,
    Responses,
    AnthropicMessages,
    AnthropicModels,
    GeminiModels,
    GeminiGenerate { model: String },
    GeminiStream { model: String, sse: bool },
}

impl Route {
    fn parse(method: &Method, path: &str, query: &str, anthropic: bool) -> Option<Route> {
        let post = method == Method::POST;
        let get = method == Method::GET;
        match path {
            "/v1/chat/completions" | "/v1beta/openai/chat/completions" if post => {
                return Some(Route::OpenAiChat)
            }
            "/v1/models" if get && anthropic => return Some(Route::AnthropicModels),
            "/v1/models" | "/v1beta/openai/models" if get => return Some(Route::OpenAiModels),
            "/v1/responses" if post => return Some(Route::Responses),
            "/v1/messages" if post => return Some(Route::AnthropicMessages),
            "/v1beta/models" if get => return Some(Route::GeminiModels),
            _ => {}
        }
        if !post {
            return None;
        }
        let rest = path
            .strip_prefix("/v1beta/models/")
            .or_else(|| path.strip_prefix("/v1/models/"))?;
        let (model, action) = rest
            .rsplit_once(':')
            .or_else(|| rest.rsplit_once("%3A"))
            .or_else(|| rest.rsplit_once("%3a"))?;
        if model.is_empty() || model.contains('/') {
            return None;
        }
        let model = percent_decode(model);
        match action {
            "generateContent" => Some(Route::GeminiGenerate { model }),
            "streamGenerateContent" => Some(Route::GeminiStream {
                model,
                sse: query_param(query, "alt").as_deref() == Some("sse"),
            }),
            _ => None,
        }
    }

    fn flavor(&self) -> Flavor {
        match self {
            Route::OpenAiChat | Route::OpenAiModels | Route::Responses => Flavor::OpenAi,
            Route::AnthropicMessages | Route::AnthropicModels => Flavor::Anthropic,
            Route::GeminiModels | Route::GeminiGenerate { .. } | Route::GeminiStream { .. } => {
                Flavor::Gemini
            }
        }
    }
}

/// A duplicate handle of a connection's socket, used to turn its close into a TCP reset.
#[cfg(unix)]
struct ConnSocket(std::os::fd::OwnedFd);

/// `HttpServer::on_connect` hook: keeps a duplicate socket handle in the connection data.
pub(crate) fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    #[cfg(unix)]
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd;
        if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
            ext.insert(ConnSocket(fd));
        }
    }
    #[cfg(not(unix))]
    let _ = (conn, ext);
}

/// Ends the close watch of a connection when actix drops the connection, so the watch's own
/// socket handle never keeps a connection open.
struct CloseWatch(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>);

/// `HttpServer::on_connect` hook: notes the moment the client closes its side of the connection
/// (end of stream or reset) while it is open here, such as a proxy dropping a request whose
/// answer is still pending.
pub(crate) fn watch_close(
    conn: &dyn std::any::Any,
    ext: &mut actix_web::dev::Extensions,
    state: &std::sync::Arc<State>,
) {
    #[cfg(unix)]
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd;
        let Ok(fd) = tcp.as_fd().try_clone_to_owned() else {
            return;
        };
        let std = std::net::TcpStream::from(fd);
        if std.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(stream) = tokio::net::TcpStream::from_std(std) else {
            return;
        };
        let (dropped, mut on_drop) = tokio::sync::oneshot::channel();
        ext.insert(CloseWatch(dropped));
        let state = std::sync::Arc::clone(state);
        actix_web::rt::spawn(async move {
            let mut byte = [0u8; 1];
            loop {
                tokio::select! {
                    _ = &mut on_drop => return,
                    peeked = stream.peek(&mut byte) => match peeked {
                        Ok(0) | Err(_) => {
                            state.record_close();
                            return;
                        }
                        // Bytes actix has yet to read: look again shortly.
                        Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                    },
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (conn, ext, state);
}

/// Makes the eventual close of this request's connection a TCP reset (SO_LINGER 0), so that clients
/// which treat a plain EOF as the end of the body (awc does) still see the abort as an error.
fn arm_reset(req: &HttpRequest) {
    #[cfg(unix)]
    if let Some(ConnSocket(fd)) = req.conn_data::<ConnSocket>() {
        let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
    }
    #[cfg(not(unix))]
    let _ = req;
}

/// The single actix handler: every request of every path lands here.
pub(crate) async fn dispatch(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let key = extract_key(&req);
    state.record(key.as_deref(), &req, &body);
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }

    let anthropic = req.headers().contains_key("anthropic-version");
    let Some(route) = Route::parse(req.method(), req.path(), req.query_string(), anthropic) else {
        return json(StatusCode::NOT_FOUND, formats::NOT_FOUND);
    };
    let flavor = route.flavor();
    let key = match key {
        Some(key) if state.is_accepted(&key) => key,
        _ => return unauthorized(flavor),
    };

    let mut reset = None;
    match state.next_behavior(&key) {
        Behavior::Ok => {}
        Behavior::Unauthorized => return unauthorized(flavor),
        Behavior::RateLimited { retry_after_secs } => {
            return HttpResponse::TooManyRequests()
                .content_type(ContentType::json())
                .insert_header((header::RETRY_AFTER, retry_after_secs.to_string()))
                .body(formats::rate_limited(flavor));
        }
        Behavior::ServerError => {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                formats::server_error(flavor),
            )
        }
        Behavior::Status { code, body } => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return HttpResponse::build(status)
                .content_type(ContentType::json())
                .body(body);
        }
        Behavior::Hang => {
            tokio::time::sleep(HANG).await;
            return json(StatusCode::GATEWAY_TIMEOUT, formats::server_error(flavor));
        }
        Behavior::ResetMidStream { after_chunks } => {
            arm_reset(&req);
            reset = Some(after_chunks);
        }
    }

    reply(route, &body, state, reset)
}

/// The normal answer of `route`, cut short when `reset` is set.
fn reply(
    route: Route,
    body: &Bytes,
    state: web::Data<State>,
    reset: Option<usize>,
) -> HttpResponse {
    let flavor = route.flavor();
    match route {
        Route::OpenAiModels => fixed(Bytes::from_static(formats::OPENAI_MODELS.as_bytes()), reset),
        Route::AnthropicModels => fixed(
            Bytes::from_static(formats::ANTHROPIC_MODELS.as_bytes()),
            reset,
        ),
        Route::GeminiModels => fixed(Bytes::from_static(formats::GEMINI_MODELS.as_bytes()), reset),
        Route::OpenAiChat | Route::Responses | Route::AnthropicMessages => {
            let Ok(parsed) = serde_json::from_slice::<ReqBody<'_>>(body) else {
                return json(StatusCode::BAD_REQUEST, formats::bad_request(flavor));
            };
            let (default_model, kind) = match route {
                Route::OpenAiChat => ("gpt-4o-mini", StreamKind::OpenAiChat),
                Route::Responses => ("gpt-4o-mini", StreamKind::Responses),
                _ => ("claude-3-5-haiku-latest", StreamKind::Anthropic),
            };
            let mut ctx = Ctx::new(
                state.next_id(),
                parsed.model.as_deref().unwrap_or(default_model),
            );
            ctx.include_usage = parsed
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false);
            if parsed.stream == Some(true) {
                return streamed(kind, ctx, state, reset);
            }
            let text = match kind {
                StreamKind::OpenAiChat => formats::openai_chat(&ctx),
                StreamKind::Responses => formats::responses(&ctx),
                _ => formats::anthropic_message(&ctx),
            };
            fixed(Bytes::from(text), reset)
        }
        Route::GeminiGenerate { .. } | Route::GeminiStream { .. } if !is_json(body) => {
            json(StatusCode::BAD_REQUEST, formats::bad_request(flavor))
        }
        Route::GeminiGenerate { model } => {
            let ctx = Ctx::new(state.next_id(), &model);
            fixed(Bytes::from(formats::gemini_generate(&ctx)), reset)
        }
        Route::GeminiStream { model, sse } => {
            let ctx = Ctx::new(state.next_id(), &model);
            let kind = if sse {
                StreamKind::GeminiSse
            } else {
                StreamKind::GeminiArray
            };
            streamed(kind, ctx, state, reset)
        }
    }
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

fn json(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(body)
}

fn unauthorized(flavor: Flavor) -> HttpResponse {
    let (code, body) = formats::unauthorized(flavor);
    json(
        StatusCode::from_u16(code).unwrap_or(StatusCode::UNAUTHORIZED),
        body,
    )
}

/// A complete JSON body, or (with `reset`) its first half followed by a dropped connection.
fn fixed(body: Bytes, reset: Option<usize>) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.content_type(ContentType::json());
    if reset.is_some() {
        let len = body.len() as u64;
        res.body(SizedStream::new(len, sse::truncated(body)))
    } else {
        res.body(body)
    }
}

fn streamed(
    kind: StreamKind,
    ctx: Ctx,
    state: web::Data<State>,
    reset: Option<usize>,
) -> HttpResponse {
    let content_type = if kind == StreamKind::GeminiArray {
        "application/json"
    } else {
        "text/event-stream"
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(sse::body(kind, ctx, state, reset))
}

/// The key the client sent: `?key=`, `Authorization: Bearer`, `x-api-key`, `x-goog-api-key`, in that order.
pub(crate) fn extract_key(req: &HttpRequest) -> Option<String> {
    if let Some(key) = query_param(req.query_string(), "key").filter(|k| !k.is_empty()) {
        return Some(key);
    }
    let headers = req.headers();
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        if let Some((scheme, token)) = value.split_once(' ') {
            let token = token.trim();
            if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
                return Some(token.to_owned());
            }
        }
    }
    ["x-api-key", "x-goog-api-key"].iter().find_map(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    })
}

/// First value of `name` in a raw query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes (invalid escapes are kept verbatim).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%2Bb%3d"), "a+b=");
        assert_eq!(percent_decode("abc"), "abc");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param("alt=sse&key=k%2D1", "key").as_deref(),
            Some("k-1")
        );
        assert_eq!(query_param("alt=sse", "key"), None);
        assert_eq!(query_param("", "key"), None);
    }

    #[test]
    fn routes() {
        let p = |m: &Method, path: &str, q: &str| Route::parse(m, path, q, false);
        assert_eq!(
            p(
                &Method::POST,
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
                "alt=sse"
            ),
            Some(Route::GeminiStream {
                model: "gemini-2.0-flash".into(),
                sse: true
            })
        );
        assert_eq!(
            p(
                &Method::POST,
                "/v1beta/models/gemini-2.0-flash%3AgenerateContent",
                ""
            ),
            Some(Route::GeminiGenerate {
                model: "gemini-2.0-flash".into()
            })
        );
        assert_eq!(p(&Method::GET, "/v1/chat/completions", ""), None);
        assert_eq!(p(&Method::POST, "/v1beta/models/x:nope", ""), None);
        assert_eq!(p(&Method::GET, "/v1/models", ""), Some(Route::OpenAiModels));
        assert_eq!(
            Route::parse(&Method::GET, "/v1/models", "", true),
            Some(Route::AnthropicModels)
        );
    }
}
