//! GPT-Load's success envelope `{"code": 0, "message": "...", "data": ...}` as a typed value, so
//! each handler's signature names the shape of its `data` and the OpenAPI document is derived
//! from the same types.

use actix_web::web::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::i18n::{t, Msg};
use crate::admin::error::AdminError;

/// A successful answer. `code` is always the integer 0; `message` is localised; `data` is left
/// out when there is none.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always 0.
    pub code: i32,
    /// Localised success text.
    pub message: String,
    /// The payload, absent for operations that only report success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

/// No payload: the envelope of operations that answer only with a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoData {}

/// The error envelope: a stable string code and a (possibly localised) message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable error code such as `VALIDATION_FAILED`; never localised.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// What a JSON admin handler returns.
pub type Reply<T> = Result<Json<Envelope<T>>, AdminError>;

/// `data` with the localised "Success" message.
pub fn ok<T>(data: T) -> Reply<T> {
    ok_with(t(Msg::Success), data)
}

/// `data` with an operation-specific message.
pub fn ok_with<T>(message: String, data: T) -> Reply<T> {
    Ok(Json(Envelope {
        code: 0,
        message,
        data: Some(data),
    }))
}

/// Only a message.
pub fn done(message: String) -> Reply<NoData> {
    Ok(Json(Envelope {
        code: 0,
        message,
        data: None,
    }))
}

/// A page of items with GPT-Load's pagination block.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub pagination: Pagination,
}

/// Position of a page in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    pub page: i64,
    pub page_size: i64,
    pub total_items: i64,
    pub total_pages: i64,
    /// False when `total_items` is a lower bound: the listing stopped counting (request logs
    /// past a horizon; see `LOG_COUNT_AHEAD`). The other listings always count exactly.
    pub total_exact: bool,
}

impl<T> Page<T> {
    /// A page; `total_pages` = ceil(total / page_size).
    pub fn new(items: Vec<T>, page: i64, page_size: i64, total: i64) -> Self {
        Page {
            items,
            pagination: Pagination {
                page,
                page_size,
                total_items: total,
                total_pages: (total + page_size - 1) / page_size.max(1),
                total_exact: true,
            },
        }
    }

    /// A page whose total is only known to be at least `lower_bound`.
    pub fn at_least(items: Vec<T>, page: i64, page_size: i64, lower_bound: i64) -> Self {
        let mut page = Self::new(items, page, page_size, lower_bound);
        page.pagination.total_exact = false;
        page
    }
}

/// Serialises a float the way Go's `encoding/json` does for the values we send: a whole number
/// without a fraction (`16`, not `16.0`), so scripts comparing GPT-Load's output see the same
/// text.
pub fn go_float<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// Reads an integer field that may also be written as a whole float (`1.0`): JSON and JSON
/// Schema read both spellings as the same number, so a client (or a generated one) that writes
/// either is understood. Fractions and values outside the field's type are refused.
pub fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    let number = <serde_json::Number as serde::Deserialize>::deserialize(deserializer)?;
    let value = number
        .as_i64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        })
        .ok_or_else(|| D::Error::custom(format!("invalid number {number}, expected an integer")))?;
    T::try_from(value).map_err(|_| D::Error::custom(format!("{value} is out of range")))
}

/// [`whole`] for an optional field (`null` or absent is `None`).
pub fn whole_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    #[derive(serde::Deserialize)]
    struct Whole<T: TryFrom<i64>>(#[serde(deserialize_with = "whole")] T);
    Ok(<Option<Whole<T>> as serde::Deserialize>::deserialize(deserializer)?.map(|w| w.0))
}

/// Go's `omitempty` on an integer: absent when zero (or unset).
pub fn zero_or_none(value: &Option<i64>) -> bool {
    value.is_none_or(|v| v == 0)
}

/// Pagination as GPT-Load reads it: `page` ≥ 1 (else 1), `page_size` 1–1000 (≤ 0 or unparsable
/// → 15, above 1000 → 1000).
pub fn page_params(page: Option<&str>, page_size: Option<&str>) -> (i64, i64) {
    let page = page
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let size = page_size
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(15)
        .min(1000);
    (page, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_clamps_like_gpt_load() {
        assert_eq!(page_params(None, None), (1, 15));
        assert_eq!(page_params(Some("0"), Some("-3")), (1, 15));
        assert_eq!(page_params(Some("3"), Some("5000")), (3, 1000));
        assert_eq!(page_params(Some("x"), Some("y")), (1, 15));
        assert_eq!(
            Page::<i32>::new(vec![], 1, 15, 31).pagination.total_pages,
            3
        );
        assert_eq!(Page::<i32>::new(vec![], 1, 15, 0).pagination.total_pages, 0);
    }

    #[test]
    fn whole_floats_print_like_go() {
        #[derive(Serialize)]
        struct F(#[serde(serialize_with = "go_float")] f64);
        let text = |v| serde_json::to_string(&F(v)).unwrap();
        assert_eq!(text(16.0), "16");
        assert_eq!(text(-3.0), "-3");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(1.5), "1.5");
    }

    #[test]
    fn envelope_omits_missing_data() {
        let Json(body) = done("fine".into()).unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"code": 0, "message": "fine"})
        );
    }
}
