//! Streamed reply bodies: SSE event sequences (and Gemini's streamed JSON array) with pacing and aborts.

use std::io;
use std::time::Duration;

use actix_web::web;
use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};

use crate::formats::{self, Ctx};
use crate::state::State;

/// How long a stream that is about to abort waits so the already produced bytes get flushed first.
const FLUSH_BEFORE_ABORT: Duration = Duration::from_millis(20);

/// Which streamed wire format to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    OpenAiChat,
    Responses,
    Anthropic,
    GeminiSse,
    GeminiArray,
}

/// A fully described streamed reply: fixed preamble, paced content chunks, fixed epilogue or abort.
struct Plan {
    kind: StreamKind,
    ctx: Ctx,
    pre: Vec<Bytes>,
    content: usize,
    post: Vec<Bytes>,
    abort: bool,
    interval: Duration,
}

impl Plan {
    fn new(
        kind: StreamKind,
        ctx: Ctx,
        chunks: usize,
        interval: Duration,
        abort_after: Option<usize>,
    ) -> Self {
        let abort = abort_after.is_some();
        let content = abort_after.unwrap_or(chunks);
        let pre = match kind {
            StreamKind::OpenAiChat | StreamKind::GeminiSse | StreamKind::GeminiArray => Vec::new(),
            StreamKind::Responses => vec![formats::responses_created(&ctx)],
            StreamKind::Anthropic => vec![
                formats::anthropic_message_start(&ctx),
                formats::anthropic_content_block_start(),
                formats::anthropic_ping(),
            ],
        };
        let post = if abort {
            Vec::new()
        } else {
            match kind {
                StreamKind::OpenAiChat if ctx.include_usage => vec![
                    formats::openai_chat_final(&ctx),
                    formats::openai_usage_chunk(&ctx, content),
                    Bytes::from_static(formats::OPENAI_DONE),
                ],
                StreamKind::OpenAiChat => vec![
                    formats::openai_chat_final(&ctx),
                    Bytes::from_static(formats::OPENAI_DONE),
                ],
                StreamKind::Responses => vec![formats::responses_completed(&ctx, content)],
                StreamKind::Anthropic => vec![
                    formats::anthropic_content_block_stop(),
                    formats::anthropic_message_delta(content),
                    formats::anthropic_message_stop(),
                ],
                StreamKind::GeminiSse if content == 0 => {
                    vec![formats::sse_data(&formats::gemini_chunk_json(
                        &ctx, None, true,
                    ))]
                }
                StreamKind::GeminiSse => Vec::new(),
                StreamKind::GeminiArray if content == 0 => {
                    let mut s = String::from("[");
                    s.push_str(&formats::gemini_chunk_json(&ctx, None, true));
                    s.push(']');
                    vec![Bytes::from(s)]
                }
                StreamKind::GeminiArray => vec![Bytes::from_static(b"]")],
            }
        };
        Plan {
            kind,
            ctx,
            pre,
            content,
            post,
            abort,
            interval,
        }
    }

    fn content_chunk(&self, i: usize) -> Bytes {
        let last = !self.abort && i + 1 == self.content;
        match self.kind {
            StreamKind::OpenAiChat => formats::openai_chat_chunk(&self.ctx, i),
            StreamKind::Responses => formats::responses_delta(i),
            StreamKind::Anthropic => formats::anthropic_delta(i),
            StreamKind::GeminiSse => {
                formats::sse_data(&formats::gemini_chunk_json(&self.ctx, Some(i), last))
            }
            StreamKind::GeminiArray => {
                let mut s = String::from(if i == 0 { "[" } else { ",\r\n" });
                s.push_str(&formats::gemini_chunk_json(&self.ctx, Some(i), last));
                Bytes::from(s)
            }
        }
    }
}

struct Cursor {
    plan: Plan,
    pos: usize,
    state: web::Data<State>,
}

async fn step(mut cur: Cursor) -> Option<(Result<Bytes, io::Error>, Cursor)> {
    let pos = cur.pos;
    cur.pos += 1;
    let plan = &cur.plan;
    if let Some(b) = plan.pre.get(pos) {
        let b = b.clone();
        return Some((Ok(b), cur));
    }
    let c = pos - plan.pre.len();
    if c < plan.content {
        if c > 0 && !plan.interval.is_zero() {
            tokio::time::sleep(plan.interval).await;
        }
        let b = cur.plan.content_chunk(c);
        cur.state.chunk_sent();
        return Some((Ok(b), cur));
    }
    let p = c - plan.content;
    if plan.abort {
        if p == 0 {
            tokio::time::sleep(FLUSH_BEFORE_ABORT).await;
            let err = io::Error::new(io::ErrorKind::ConnectionReset, "mock: reset mid-stream");
            return Some((Err(err), cur));
        }
        return None;
    }
    let b = plan.post.get(p)?.clone();
    Some((Ok(b), cur))
}

/// Body stream of a streamed reply; `abort_after` = `Some(n)` sends `n` content chunks then fails.
pub(crate) fn body(
    kind: StreamKind,
    ctx: Ctx,
    state: web::Data<State>,
    abort_after: Option<usize>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    let (chunks, interval) = state.stream_shape();
    let plan = Plan::new(kind, ctx, chunks, interval, abort_after);
    stream::unfold(
        Cursor {
            plan,
            pos: 0,
            state,
        },
        step,
    )
}

/// A fixed body cut in half: yields the first half, then an error so the connection is dropped.
pub(crate) fn truncated(full: Bytes) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    let half = full.len().div_ceil(2);
    let first = full.slice(..half);
    stream::unfold(Some(first), |first| async move {
        match first {
            Some(b) => Some((Ok(b), None)),
            None => {
                tokio::time::sleep(FLUSH_BEFORE_ABORT).await;
                let err = io::Error::new(io::ErrorKind::ConnectionReset, "mock: reset mid-body");
                Some((Err(err), None))
            }
        }
    })
    .take(2)
}
