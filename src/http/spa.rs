//! The admin web app: files of `web-admin/dist` embedded in the binary (read from disk in debug
//! builds), served with history-mode fallback to `index.html` and cache headers that suit Vite's
//! content-hashed assets.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::http::error::not_found;

/// `web-admin/dist`; absent when the UI was not built, which must still compile.
#[derive(RustEmbed)]
#[folder = "web-admin/dist/"]
#[allow_missing = true]
struct Dist;

/// Vite writes content-hashed file names under `/assets/`: they never change, so clients may keep
/// them for a year. Other files (favicon) keep a short cache, `index.html` none at all.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHORT: &str = "public, max-age=3600";
const NO_CACHE: &str = "no-cache, no-store, must-revalidate";

/// The fallback of the whole app: unknown `/api` and `/proxy` paths get GPT-Load's JSON 404,
/// everything else is the admin UI.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    if is_backend_path(path) || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return not_found();
    }
    let Some(index) = Dist::get("index.html") else {
        return page(NO_UI_PAGE.as_bytes().to_vec());
    };
    let file = path.trim_start_matches('/');
    if !file.is_empty() && !file.ends_with('/') {
        if let Some(response) = asset(&req, file) {
            return response;
        }
        // A missing hashed asset is a stale page asking for an old build: answering index.html
        // would only make the browser report a MIME error.
        if file.starts_with("assets/") {
            return HttpResponse::NotFound().finish();
        }
    }
    page(index.data.into_owned())
}

fn is_backend_path(path: &str) -> bool {
    ["/api", "/proxy"].iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// `index.html` (or the "not built" page) for every UI route, never cached.
fn page(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, NO_CACHE))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::EXPIRES, "0"))
        .body(body)
}

/// A file of the build, gzip-precompressed when the build has a `.gz` twin and the client takes
/// gzip.
fn asset(req: &HttpRequest, file: &str) -> Option<HttpResponse> {
    let plain = Dist::get(file)?;
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, content_type(&mime)))
        .insert_header((header::CACHE_CONTROL, cache_control(file)))
        .insert_header((header::VARY, "Accept-Encoding"));
    if accepts_gzip(req.headers().get(header::ACCEPT_ENCODING)) {
        if let Some(gz) = Dist::get(&format!("{file}.gz")) {
            response.insert_header((header::CONTENT_ENCODING, "gzip"));
            return Some(response.body(gz.data.into_owned()));
        }
    }
    Some(response.body(plain.data.into_owned()))
}

fn content_type(mime: &mime_guess::Mime) -> String {
    if mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

fn cache_control(file: &str) -> &'static str {
    if file.starts_with("assets/") {
        IMMUTABLE
    } else {
        SHORT
    }
}

/// True when `Accept-Encoding` lists gzip (or `*`) without `q=0`.
fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    text.split(',').any(|part| {
        let mut pieces = part.split(';').map(str::trim);
        let coding = pieces.next().unwrap_or_default();
        let refused = pieces.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

const NO_UI_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>gpt-load</title>\
<style>body{font-family:system-ui,sans-serif;max-width:640px;margin:64px auto;padding:0 16px;line-height:1.5}\
code,pre{background:#f3f4f6;border-radius:4px;padding:2px 6px}pre{padding:10px 12px}</style></head>\
<body><h1>gpt-load is running</h1><p>The admin UI is not part of this build. Build it, then rebuild \
(or, for a debug build, just reload this page):</p><pre>cd web-admin &amp;&amp; npm ci &amp;&amp; npm run build</pre>\
<p>The proxy is at <code>/proxy/{group}/…</code> and the admin API at <code>/api</code>.</p></body></html>";

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(v: &'static str) -> Option<HeaderValue> {
        Some(HeaderValue::from_static(v))
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(ae("gzip, deflate, br").as_ref()));
        assert!(accepts_gzip(ae("br;q=1.0, GZIP;q=0.5").as_ref()));
        assert!(accepts_gzip(ae("*").as_ref()));
        assert!(!accepts_gzip(ae("gzip;q=0, br").as_ref()));
        assert!(!accepts_gzip(ae("br, deflate").as_ref()));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn only_hashed_assets_are_immutable() {
        assert_eq!(cache_control("assets/index-K_NLizHm.js"), IMMUTABLE);
        assert_eq!(cache_control("favicon.svg"), SHORT);
    }

    #[test]
    fn backend_prefixes_are_exact_segments() {
        assert!(is_backend_path("/api"));
        assert!(is_backend_path("/api/nope"));
        assert!(is_backend_path("/proxy/g/v1"));
        assert!(!is_backend_path("/apiary"));
        assert!(!is_backend_path("/keys"));
    }

    #[test]
    fn text_types_carry_a_charset() {
        let js = mime_guess::from_path("a.js").first_or_octet_stream();
        assert_eq!(content_type(&js), "text/javascript; charset=utf-8");
        let png = mime_guess::from_path("a.png").first_or_octet_stream();
        assert_eq!(content_type(&png), "image/png");
    }
}
