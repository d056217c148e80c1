//! Reading QRS answers within bounds. One policy's site must not be able to take the controller's memory (and
//! every other policy's run with it): every answer is read with a size limit, and the lists that can be large
//! are parsed as they arrive, one element at a time, into the compact domain types.

use std::io::Read;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use tokio::sync::mpsc;

/// Bounds on one list answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListLimits {
    /// Bytes of the whole answer.
    pub bytes: u64,
    /// Bytes of one element (a QRS allocation with its condensed user is well under a kilobyte).
    pub element_bytes: usize,
    /// Elements in the list.
    pub rows: usize,
    /// Why there may be no more elements, for the message when there are.
    pub rows_why: &'static str,
}

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("the answer is larger than {limit} bytes; nothing was used")]
    TooLarge { limit: u64 },
    #[error("one element of the answer is larger than {limit} bytes; nothing was used")]
    ElementTooLarge { limit: usize },
    #[error("the answer lists more than {limit} {what}{why}")]
    TooManyRows {
        limit: usize,
        what: &'static str,
        why: &'static str,
    },
    #[error("the answer was cut off: {0}")]
    Transport(String),
    #[error("invalid JSON ({0})")]
    Json(String),
    #[error("{0}")]
    Element(String),
}

/// The whole body, refusing more than `limit` bytes (checked as it arrives, not after).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ReadError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most `limit` bytes of the body, for an error message; the rest is not read.
pub(crate) async fn read_prefix(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

fn transport(error: reqwest::Error) -> ReadError {
    ReadError::Transport(error_chain(&error.without_url()))
}

/// Turns one element of a list into what the caller keeps, or says why it cannot.
pub(crate) trait Convert<T, U>: FnMut(T) -> Result<U, String> + Send + 'static {}

impl<T, U, F: FnMut(T) -> Result<U, String> + Send + 'static> Convert<T, U> for F {}

/// A JSON list, parsed element by element as the body arrives, each element turned into `U` by `convert`
/// (which may refuse it). Peak memory is the converted elements plus a bounded buffer.
pub(crate) async fn read_list<T, U, F>(
    mut response: reqwest::Response,
    limits: ListLimits,
    what: &'static str,
    convert: F,
) -> Result<Vec<U>, ReadError>
where
    T: DeserializeOwned,
    U: Send + 'static,
    F: Convert<T, U>,
{
    if response.content_length().is_some_and(|n| n > limits.bytes) {
        return Err(ReadError::TooLarge {
            limit: limits.bytes,
        });
    }
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let element_bytes = Arc::new(AtomicUsize::new(0));
    let element_too_large = Arc::new(AtomicBool::new(false));
    // Why the parser stopped, when it was this code's decision rather than the JSON's.
    let refused: Arc<Mutex<Option<ReadError>>> = Arc::default();
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
        element_bytes: Arc::clone(&element_bytes),
        element_limit: limits.element_bytes,
        element_too_large: Arc::clone(&element_too_large),
    };
    let refused_by_seed = Arc::clone(&refused);
    let parser = tokio::task::spawn_blocking(move || {
        let mut deserializer = serde_json::Deserializer::from_reader(
            std::io::BufReader::with_capacity(64 * 1024, reader),
        );
        let seed = ListSeed {
            convert,
            rows: limits.rows,
            rows_why: limits.rows_why,
            what,
            element_bytes,
            refused: Arc::clone(&refused_by_seed),
            _element: PhantomData::<T>,
        };
        let items = seed
            .deserialize(&mut deserializer)
            .and_then(|items| deserializer.end().map(|()| items));
        items.map_err(|e| e.to_string())
    });

    let feed_error = feed(&mut response, tx, limits.bytes).await;
    let parsed = parser
        .await
        .map_err(|e| ReadError::Json(format!("the parser stopped: {e}")))?;
    if let Some(error) = feed_error {
        return Err(error);
    }
    match parsed {
        Ok(items) => Ok(items),
        Err(_) if element_too_large.load(Ordering::Relaxed) => Err(ReadError::ElementTooLarge {
            limit: limits.element_bytes,
        }),
        Err(message) => Err(refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or(ReadError::Json(message))),
    }
}

/// Hands the body to the parser chunk by chunk, up to `limit` bytes: `Some` when the body is larger or was cut
/// off. A parser that stops early ends the feed too, and its own result says why. Taking `tx` means the parser
/// reads the end of its input as soon as this returns.
async fn feed(
    response: &mut reqwest::Response,
    tx: mpsc::Sender<Bytes>,
    limit: u64,
) -> Option<ReadError> {
    let mut received: u64 = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if received > limit {
                    return Some(ReadError::TooLarge { limit });
                }
                if tx.send(chunk).await.is_err() {
                    // The parser stopped early (an error); its result says why.
                    return None;
                }
            }
            Ok(None) => return None,
            Err(e) => return Some(transport(e)),
        }
    }
}

/// Feeds the parser from the chunks the async side receives, counting the bytes of the current element.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
    element_bytes: Arc<AtomicUsize>,
    element_limit: usize,
    element_too_large: Arc<AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        // Reads run ahead of the parser by at most the buffer: close enough for a bound of this size.
        let used = self.element_bytes.fetch_add(n, Ordering::Relaxed) + n;
        if used > self.element_limit {
            self.element_too_large.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("element too large"));
        }
        Ok(n)
    }
}

struct ListSeed<T, F> {
    convert: F,
    rows: usize,
    rows_why: &'static str,
    what: &'static str,
    element_bytes: Arc<AtomicUsize>,
    refused: Arc<Mutex<Option<ReadError>>>,
    _element: PhantomData<T>,
}

impl<'de, T, U, F> DeserializeSeed<'de> for ListSeed<T, F>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<U, String>,
{
    type Value = Vec<U>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<U>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T, U, F> Visitor<'de> for ListSeed<T, F>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<U, String>,
{
    type Value = Vec<U>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a list of {}", self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Vec<U>, A::Error> {
        use serde::de::Error as _;
        let mut items = Vec::new();
        while let Some(element) = seq.next_element::<T>()? {
            let refusal = if items.len() == self.rows {
                ReadError::TooManyRows {
                    limit: self.rows,
                    what: self.what,
                    why: self.rows_why,
                }
            } else {
                match (self.convert)(element) {
                    Ok(item) => {
                        items.push(item);
                        self.element_bytes.store(0, Ordering::Relaxed);
                        continue;
                    }
                    Err(problem) => ReadError::Element(problem),
                }
            };
            let message = refusal.to_string();
            *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
            return Err(A::Error::custom(message));
        }
        Ok(items)
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; TLS and connection problems are in
/// the source chain.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
