//! Request logs: the filtered, paginated listing and the CSV export of the distinct keys that
//! appear in the filtered rows, with their token sums.

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use chrono::{DateTime, Local, NaiveDateTime};
use serde::Deserialize;
use utoipa::IntoParams;

use super::response::{ok, page_params, Envelope, ErrorBody, Page, Reply};
use super::state::AdminState;
use crate::admin::error::AdminError;
use crate::crypto::KeyCodec;
use crate::db::repo_logs::{ExportedKey, LogFilter, LogRow, LogTotal};

/// Rows per batch of the streamed export.
const EXPORT_BATCH: i64 = 1000;

/// Filters of `GET /api/logs` and `GET /api/logs/export`; all optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Substring of the aggregate group name.
    pub parent_group_name: Option<String>,
    /// Substring of the group name.
    pub group_name: Option<String>,
    /// Exact key.
    pub key_value: Option<String>,
    /// Substring of the model.
    pub model: Option<String>,
    /// `true` or `false` (other values are ignored).
    pub is_success: Option<String>,
    /// `retry` or `final`, matched as given.
    pub request_type: Option<String>,
    /// An integer (other values are ignored).
    pub status_code: Option<String>,
    /// Exact client address.
    pub source_ip: Option<String>,
    /// Substring of the error message.
    pub error_contains: Option<String>,
    /// RFC 3339; rows at or after it (other values are ignored).
    pub start_time: Option<String>,
    /// RFC 3339; rows at or before it (other values are ignored).
    pub end_time: Option<String>,
    /// Page number, from 1 (listing only).
    pub page: Option<String>,
    /// Items per page, default 15, at most 1000 (listing only).
    pub page_size: Option<String>,
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `strconv.ParseBool`'s spellings; anything else is no filter, as in GPT-Load.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// An RFC 3339 time; anything else (a bare date, `NaN`) is no filter, as in GPT-Load.
fn parse_time(raw: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.naive_utc())
}

impl LogQuery {
    /// The repository filter. Like GPT-Load, a filter value that does not parse (the original
    /// UI sends `status_code=NaN` for letters typed in its box) is ignored rather than refused,
    /// and `request_type` matches the raw value.
    pub fn filter(&self, state: &AdminState) -> LogFilter {
        LogFilter {
            parent_group_name: present(&self.parent_group_name).map(str::to_string),
            group_name: present(&self.group_name).map(str::to_string),
            key_hash: present(&self.key_value).map(|k| state.repo.codec.hash(k)),
            model: present(&self.model).map(str::to_string),
            is_success: present(&self.is_success).and_then(parse_bool),
            request_type: present(&self.request_type).map(str::to_string),
            status_code: present(&self.status_code).and_then(|v| v.parse::<i32>().ok()),
            source_ip: present(&self.source_ip).map(str::to_string),
            error_contains: present(&self.error_contains).map(str::to_string),
            start: present(&self.start_time).and_then(parse_time),
            end: present(&self.end_time).and_then(parse_time),
        }
    }
}

/// Request logs matching the filters, newest first.
#[utoipa::path(get, path = "/api/logs", tag = "logs", params(LogQuery),
    responses((status = 200, body = Envelope<Page<LogRow>>), (status = 401, body = ErrorBody)))]
pub async fn list(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    query: web::Query<LogQuery>,
) -> Reply<Page<LogRow>> {
    let filter = query.filter(&state);
    let (page, size) = page_params(query.page.as_deref(), query.page_size.as_deref());
    let (rows, total) = state.repo.logs_page(&filter, page, size).await?;
    let items = rows
        .into_iter()
        .map(|row| row.reveal(&state.repo.codec))
        .collect();
    ok(match total {
        LogTotal::Exact(n) => Page::new(items, page, size, n),
        LogTotal::AtLeast(n) => Page::at_least(items, page, size, n),
    })
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The export's header: GPT-Load's three columns, then the token sums (added columns, so
/// scripts that read GPT-Load's first three columns keep working).
const EXPORT_HEADER: &str = "key_value,group_name,status_code,input_tokens,output_tokens,\
total_tokens,cached_tokens,cache_write_tokens,reasoning_tokens\n";

/// One key's export line while its rows stream by: the newest row's fields and the token sums of
/// all its filtered rows.
struct KeyLine {
    hash: String,
    /// `key_value,group_name,status_code`; `None` when the key cannot be decrypted (no line).
    head: Option<String>,
    /// Per token column, the sum over the rows that reported it; `None` (an empty field) when
    /// no row did, so unknown usage never reads as 0.
    tokens: [Option<i64>; 6],
}

impl KeyLine {
    fn start(row: &ExportedKey, codec: &KeyCodec) -> Self {
        let head = codec.decode(&row.key_value).ok().map(|plain| {
            format!(
                "{},{},{}",
                csv_field(plain.expose()),
                csv_field(&row.group_name),
                row.status_code
            )
        });
        KeyLine {
            hash: row.key_hash.clone(),
            head,
            tokens: row.tokens,
        }
    }

    fn add(&mut self, tokens: &[Option<i64>; 6]) {
        for (sum, value) in self.tokens.iter_mut().zip(tokens) {
            if let Some(v) = value {
                *sum = Some(sum.unwrap_or(0) + v);
            }
        }
    }

    fn write(&self, out: &mut String) {
        let Some(head) = &self.head else {
            return;
        };
        out.push_str(head);
        for sum in &self.tokens {
            out.push(',');
            if let Some(v) = sum {
                out.push_str(&v.to_string());
            }
        }
        out.push('\n');
    }
}

/// CSV of every distinct key in the filtered logs, ordered by key hash: `key_value,group_name,
/// status_code` from the key's latest row (GPT-Load's columns), then the key's token sums over
/// all its filtered rows (`input_tokens,output_tokens,total_tokens,cached_tokens,
/// cache_write_tokens,reasoning_tokens`; empty when no row reported that count). Browsers
/// authenticate with `?key=`.
#[utoipa::path(get, path = "/api/logs/export", tag = "logs", params(LogQuery),
    responses((status = 200, content_type = "text/csv", body = String,
            description = "Attachment `log_keys_export_YYYYMMDDHHMMSS.csv`"),
        (status = 401, body = ErrorBody)))]
pub async fn export(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, AdminError> {
    let filter = query.filter(&state);
    let repo = state.repo.clone();
    let header = futures_util::stream::once(async {
        Ok::<_, AdminError>(Bytes::from_static(EXPORT_HEADER.as_bytes()))
    });
    // A key's rows may span batches: its line is written once the next key (or the end) shows.
    let rows = futures_util::stream::unfold(Some((0i64, None::<KeyLine>)), move |cursor| {
        let repo = repo.clone();
        let filter = filter.clone();
        async move {
            let (offset, mut current) = cursor?;
            match repo.log_keys_batch(&filter, offset, EXPORT_BATCH).await {
                Ok(batch) if batch.is_empty() => {
                    let mut text = String::new();
                    if let Some(line) = current {
                        line.write(&mut text);
                    }
                    Some((Ok(Bytes::from(text)), None))
                }
                Ok(batch) => {
                    let next = offset + batch.len() as i64;
                    let mut text = String::new();
                    for row in &batch {
                        match &mut current {
                            Some(line) if line.hash == row.key_hash => line.add(&row.tokens),
                            _ => {
                                if let Some(done) = current.take() {
                                    done.write(&mut text);
                                }
                                current = Some(KeyLine::start(row, &repo.codec));
                            }
                        }
                    }
                    Some((Ok(Bytes::from(text)), Some((next, current))))
                }
                Err(err) => {
                    tracing::error!(error = %err, "Log export failed mid-stream.");
                    Some((Err(AdminError::from(err)), None))
                }
            }
        }
    });
    use futures_util::StreamExt as _;
    let filename = format!(
        "log_keys_export_{}.csv",
        Local::now().format("%Y%m%d%H%M%S")
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(super::attachment(&filename))
        .streaming(header.chain(rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn booleans_and_times_parse_like_go() {
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert!(parse_time("2026-01-02T15:04:05+08:00").is_some());
        assert!(parse_time("2026-01-02").is_none());
    }
}
