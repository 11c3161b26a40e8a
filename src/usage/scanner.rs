//! The usage scanner fed every chunk relayed to the client. It looks for the JSON keys `"usage"`
//! and `"usageMetadata"` outside strings and parses the value that follows, wherever it sits:
//! in an SSE event, a plain JSON body or Gemini's streamed JSON array. Chunks are read in place;
//! bytes are copied only when a key or its value is cut by a chunk boundary, and at most
//! [`MAX_PENDING`] of them, so a body of any size costs one pass and a few bytes of state.
//!
//! Bodies compressed with gzip or deflate are inflated on the fly in small steps (the client
//! still gets the compressed bytes); other encodings (br, zstd, unknown) leave usage unknown.

use std::io::Write;

use super::{RawUsage, Usage, Wire};

/// Longest cut-off usage value kept while waiting for the rest of it; beyond that the value is
/// given up and the usage stays as it was.
const MAX_PENDING: usize = 64 << 10;
/// Bytes kept before a cut-off key prefix, so escapes before it can still be counted.
const CONTEXT: usize = 8;
const KEY: &[u8] = b"\"usage";
const METADATA: &[u8] = b"Metadata\"";

/// Built once: setting up the searcher costs more than scanning a typical chunk.
static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));

enum Decoder {
    Plain,
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Zlib(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
    /// An encoding the scanner cannot read, or corrupt data: usage stays unknown.
    Unreadable,
}

/// What was found at one match of [`KEY`].
enum Step {
    /// A usage value was read (or the match was no key); scanning resumes at this offset.
    Next(usize),
    /// The data ended inside the key or its value.
    Cut,
}

/// Reads the usage of one response as its chunks pass by.
pub struct UsageScanner {
    wire: Wire,
    raw: RawUsage,
    seen: bool,
    /// Bytes from a cut-off key (with a little context before it) waiting for the next chunk.
    carry: Vec<u8>,
    /// Backslashes that ended the previous chunk, when nothing was carried.
    lead_escapes: usize,
    decoder: Decoder,
}

impl UsageScanner {
    /// A scanner for a response in `wire` format sent with this `Content-Encoding`.
    pub fn new(wire: Wire, content_encoding: Option<&str>) -> Self {
        let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
        let decoder = match encoding.as_deref() {
            None | Some("") | Some("identity") => Decoder::Plain,
            Some("gzip") | Some("x-gzip") => {
                Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new())))
            }
            Some("deflate") => Decoder::Zlib(Box::new(flate2::write::ZlibDecoder::new(Vec::new()))),
            Some(_) => Decoder::Unreadable,
        };
        Self {
            wire,
            raw: RawUsage::default(),
            seen: false,
            carry: Vec::new(),
            lead_escapes: 0,
            decoder,
        }
    }

    /// Reads one relayed chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.decoder {
            Decoder::Plain => self.feed_plain(chunk),
            Decoder::Unreadable => {}
            Decoder::Gzip(_) | Decoder::Zlib(_) => self.feed_compressed(chunk),
        }
    }

    /// Bytes held back while waiting for the rest of a cut-off key or value.
    pub fn held_bytes(&self) -> usize {
        self.carry.len()
    }

    /// The usage read so far; all `None` when none was seen.
    pub fn usage(&self) -> Usage {
        if self.seen {
            self.wire.normalise(&self.raw)
        } else {
            Usage::default()
        }
    }

    /// Flushes what a decoder still holds (the usage sits at a body's end) and returns the
    /// usage read.
    pub fn finish(&mut self) -> Usage {
        let mut decoder = std::mem::replace(&mut self.decoder, Decoder::Unreadable);
        // A truncated stream fails to finish but may still have yielded its last bytes.
        let _ = match &mut decoder {
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Zlib(d) => d.try_finish(),
            Decoder::Plain | Decoder::Unreadable => Ok(()),
        };
        self.drain(&mut decoder);
        self.decoder = decoder;
        self.usage()
    }

    /// Inflates `chunk` one decoder step at a time, scanning each step's output, so a highly
    /// compressed chunk never expands into one large buffer.
    fn feed_compressed(&mut self, mut chunk: &[u8]) {
        let mut decoder = std::mem::replace(&mut self.decoder, Decoder::Unreadable);
        let readable = loop {
            if chunk.is_empty() {
                break true;
            }
            let written = match &mut decoder {
                Decoder::Gzip(d) => d.write(chunk),
                Decoder::Zlib(d) => d.write(chunk),
                Decoder::Plain | Decoder::Unreadable => break false,
            };
            self.drain(&mut decoder);
            match written {
                // The compressed stream ended: anything after it is not read.
                Ok(0) => break true,
                Ok(n) => chunk = &chunk[n..],
                Err(_) => break false,
            }
        };
        if readable {
            self.decoder = decoder;
        }
    }

    /// Scans what the decoder has produced, then hands its buffer back emptied.
    fn drain(&mut self, decoder: &mut Decoder) {
        let out = match decoder {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zlib(d) => d.get_mut(),
            Decoder::Plain | Decoder::Unreadable => return,
        };
        if out.is_empty() {
            return;
        }
        let mut plain = std::mem::take(out);
        self.feed_plain(&plain);
        plain.clear();
        match decoder {
            Decoder::Gzip(d) => *d.get_mut() = plain,
            Decoder::Zlib(d) => *d.get_mut() = plain,
            Decoder::Plain | Decoder::Unreadable => {}
        }
    }

    fn feed_plain(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if self.carry.is_empty() {
            self.scan(chunk, self.lead_escapes);
        } else {
            let mut data = std::mem::take(&mut self.carry);
            data.extend_from_slice(chunk);
            self.scan(&data, 0);
        }
    }

    fn scan(&mut self, data: &[u8], lead_escapes: usize) {
        let mut pos = 0;
        while let Some(found) = FINDER.find(&data[pos..]) {
            let at = pos + found;
            match self.read_at(data, at, lead_escapes) {
                Step::Next(next) => pos = next,
                Step::Cut => {
                    let start = at.saturating_sub(CONTEXT);
                    if data.len() - start <= MAX_PENDING {
                        self.carry = data[start..].to_vec();
                    }
                    self.lead_escapes = 0;
                    return;
                }
            }
        }
        self.keep_key_prefix(data, lead_escapes);
    }

    /// Carries a possible start of [`KEY`] (`"`, `"u`, … `"usag`) cut by the chunk's end.
    fn keep_key_prefix(&mut self, data: &[u8], lead_escapes: usize) {
        let window = data.len().saturating_sub(KEY.len() - 1);
        let prefix = memchr::memrchr(b'"', &data[window..])
            .map(|q| window + q)
            .filter(|&q| KEY.starts_with(&data[q..]));
        match prefix {
            Some(q) => {
                self.carry = data[q.saturating_sub(CONTEXT)..].to_vec();
                self.lead_escapes = 0;
            }
            None => {
                let escapes = trailing_escapes(data);
                self.lead_escapes = if escapes == data.len() {
                    escapes + lead_escapes
                } else {
                    escapes
                };
            }
        }
    }

    /// Reads the value after a `"usage"`/`"usageMetadata"` key at `at`, if it is one.
    fn read_at(&mut self, data: &[u8], at: usize, lead_escapes: usize) -> Step {
        let mut escapes = trailing_escapes(&data[..at]);
        if escapes == at {
            escapes += lead_escapes;
        }
        if escapes % 2 == 1 {
            // `\"usage`: a quote inside a string.
            return Step::Next(at + 1);
        }
        let rest = &data[at + KEY.len()..];
        let key_len = match rest.first() {
            None => return Step::Cut,
            Some(b'"') => 1,
            Some(b'M') if rest.starts_with(METADATA) => METADATA.len(),
            Some(b'M') if METADATA.starts_with(rest) => return Step::Cut,
            Some(_) => return Step::Next(at + 1),
        };
        let after_key = at + KEY.len() + key_len;
        let Some(colon) = data[after_key..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|p| after_key + p)
        else {
            return Step::Cut;
        };
        if data[colon] != b':' {
            return Step::Next(after_key);
        }
        let value = &data[colon + 1..];
        let mut values =
            serde_json::Deserializer::from_slice(value).into_iter::<Option<RawUsage>>();
        match values.next() {
            Some(Ok(found)) => {
                if let Some(found) = found {
                    self.raw.merge(&found);
                    self.seen = true;
                }
                Step::Next(colon + 1 + values.byte_offset())
            }
            None => Step::Cut,
            Some(Err(e)) if e.is_eof() => Step::Cut,
            // Not a usage object (another API's `usage` string, a malformed count): skip it.
            Some(Err(_)) => Step::Next(colon + 1),
        }
    }
}

/// How many backslashes end `data`.
fn trailing_escapes(data: &[u8]) -> usize {
    data.iter().rev().take_while(|&&b| b == b'\\').count()
}
