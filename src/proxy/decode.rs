//! Decoding of compressed upstream bodies, only where the proxy must read them (error messages,
//! model lists); successful replies pass through still compressed.

use std::io::Read;

/// Largest decoded size accepted: error bodies and model lists are small.
const MAX_DECODED: u64 = 8 << 20;

/// Decodes `body` per a `Content-Encoding` value (gzip, deflate, br, zstd, identity). `None` when
/// the encoding is unknown or the data is corrupt.
pub fn decode(body: &[u8], encoding: Option<&str>) -> Option<Vec<u8>> {
    let encoding = encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Vec::new();
    let read = match encoding.as_str() {
        "" | "identity" => return Some(body.to_vec()),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(body)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        "deflate" => {
            // "deflate" is zlib-wrapped per the RFC, raw in some servers: try both.
            let zlib = flate2::read::ZlibDecoder::new(body)
                .take(MAX_DECODED)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(MAX_DECODED)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        "br" => brotli_decompressor::Decompressor::new(body, 4096)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        "zstd" => match ruzstd::decoding::StreamingDecoder::new(body) {
            Ok(decoder) => decoder.take(MAX_DECODED).read_to_end(&mut out),
            Err(_) => return None,
        },
        _ => return None,
    };
    read.ok().map(|_| out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_deflate_round_trip() {
        let text = br#"{"error":{"message":"bad"}}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text).unwrap();
        assert_eq!(decode(&gz.finish().unwrap(), Some("gzip")).unwrap(), text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).unwrap();
        assert_eq!(decode(&z.finish().unwrap(), Some("deflate")).unwrap(), text);
        assert_eq!(decode(text, None).unwrap(), text);
        assert!(decode(b"garbage", Some("gzip")).is_none());
        assert!(decode(text, Some("compress")).is_none());
    }
}
