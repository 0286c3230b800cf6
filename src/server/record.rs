//! Records every request of the machine listener in the boot history, the
//! access log ([`super::access_log`]) and the metrics. The response body is
//! wrapped so the record is made when the body is done (or dropped: the
//! client vanished), with the bytes actually handed to the connection and
//! the time until then. A download cut short is recorded with reason
//! `aborted`.
//!
//! `/healthz` is counted in the metrics but not recorded: a load balancer
//! polling it would push every boot out of the history.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{Method, header};
use http_body::{Body as _, Frame, SizeHint};

use super::access_log;
use super::error::EventReason;
use super::identity::{Peer, Served};
use super::metrics::route_of;
use super::telemetry::Telemetry;
use crate::events::{BOOT_SCRIPT_PATH, Event, Kind, Timestamp};
use crate::names::Fingerprint;

/// Longest query value kept; iPXE's are a few dozen characters.
const MAX_QUERY_VALUE: usize = 64;
/// Longest path kept, in characters.
const MAX_PATH_CHARS: usize = 256;

/// A request's history event, begun when the request arrives.
pub struct Recording {
    telemetry: Arc<Telemetry>,
    event: Event,
    began: Instant,
    route: &'static str,
    head: bool,
}

impl Recording {
    pub fn begin<B>(telemetry: &Arc<Telemetry>, peer: &Peer, request: &Request<B>) -> Self {
        let began = Instant::now();
        let mut event = Event::new(Kind::Request, Timestamp::now(), peer.addr_text.clone());
        let path = request.uri().path();
        let route = route_of(path);
        event.path = Some(loggable_path(path));
        event.method = Some(shared_method(request.method()));
        event.tls = Some(peer.tls_text.clone());
        if let Some(query) = request.uri().query() {
            for_each_pair(query, |name, value| {
                let slot = match name {
                    "mac" => &mut event.mac,
                    "platform" => &mut event.platform,
                    "buildarch" => &mut event.buildarch,
                    _ => return,
                };
                // A name without a value says nothing.
                if let Some(value) = loggable_value(value) {
                    *slot = Some(value);
                }
            });
        }
        Self {
            telemetry: telemetry.clone(),
            event,
            began,
            route,
            head: request.method() == Method::HEAD,
        }
    }

    /// Fills in what the response says and whom it `served`, writes the
    /// access-log line, and wraps the body so that the event is recorded
    /// when the body is done.
    pub fn finish(
        self,
        peer: &Peer,
        response: Response,
        served: Option<&Served>,
    ) -> http::Response<Counted> {
        let Self {
            telemetry,
            mut event,
            began,
            route,
            head,
        } = self;
        event.machine = served.map(|s| s.machine.clone());
        event.fingerprint = served
            .map(|s| &s.fingerprint)
            .or(peer.fingerprint.as_ref())
            .map(Fingerprint::shared);
        event.reason = response
            .extensions()
            .get::<EventReason>()
            .map(|r| r.0.to_string());
        event.status = Some(response.status().as_u16());
        let announced = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .or_else(|| response.body().size_hint().exact());
        event.expected_bytes = if head { Some(0) } else { announced };
        access_log::write(
            &event,
            announced.unwrap_or(0),
            began.elapsed().as_millis() as u64,
        );

        let pending = Pending {
            telemetry,
            event,
            began,
            route,
            keep: route != "/healthz",
        };
        response.map(|body| Counted {
            inner: body,
            sent: 0,
            ended: false,
            pending: Some(pending),
        })
    }
}

/// Calls `f` with each `name=value` pair of a query string, decoded as
/// `application/x-www-form-urlencoded`. A query with nothing to decode, as
/// iPXE sends them, is split as it is: the decoder's copies and UTF-8
/// checks cost more than the rest of the request's record.
fn for_each_pair(query: &str, mut f: impl FnMut(&str, &str)) {
    if query.contains(['%', '+']) {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            f(&name, &value);
        }
        return;
    }
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        f(name, value);
    }
}

/// A query value as kept: control characters out (they end up on
/// terminals), at most [`MAX_QUERY_VALUE`] characters; none if that
/// leaves nothing.
fn loggable_value(value: &str) -> Option<Arc<str>> {
    let tame = value.len() <= MAX_QUERY_VALUE
        && if value.is_ascii() {
            !value.bytes().any(|b| b.is_ascii_control())
        } else {
            !value.chars().any(char::is_control)
        };
    let kept: Arc<str> = if tame {
        value.into()
    } else {
        value
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_QUERY_VALUE)
            .collect::<String>()
            .into()
    };
    (!kept.is_empty()).then_some(kept)
}

/// The path as logged and recorded: a secret's token hidden, at most
/// [`MAX_PATH_CHARS`] characters. The boot script's, which every boot asks
/// for, is shared rather than copied.
fn loggable_path(path: &str) -> Arc<str> {
    static BOOT_SCRIPT: LazyLock<Arc<str>> = LazyLock::new(|| BOOT_SCRIPT_PATH.into());
    if path == BOOT_SCRIPT_PATH {
        return BOOT_SCRIPT.clone();
    }
    let shown = if path.starts_with("/secrets/") {
        "/secrets/<token>"
    } else {
        path
    };
    if shown.len() <= MAX_PATH_CHARS {
        return shown.into();
    }
    match shown.char_indices().nth(MAX_PATH_CHARS) {
        Some((end, _)) => shown[..end].into(),
        None => shown.into(),
    }
}

/// The method as recorded; the ones machines use are shared.
fn shared_method(method: &Method) -> Arc<str> {
    static GET: LazyLock<Arc<str>> = LazyLock::new(|| "GET".into());
    static HEAD: LazyLock<Arc<str>> = LazyLock::new(|| "HEAD".into());
    match *method {
        Method::GET => GET.clone(),
        Method::HEAD => HEAD.clone(),
        _ => method.as_str().into(),
    }
}

/// The record waiting for its body to finish.
struct Pending {
    telemetry: Arc<Telemetry>,
    event: Event,
    began: Instant,
    route: &'static str,
    keep: bool,
}

/// A response body that counts what is taken from it and records the
/// request when it is dropped. Handed to hyper as it is: boxing it as an
/// axum `Body` would cost an allocation per request.
pub struct Counted {
    inner: Body,
    sent: u64,
    ended: bool,
    pending: Option<Pending>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.ended = true,
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let Some(Pending {
            telemetry,
            mut event,
            began,
            route,
            keep,
        }) = self.pending.take()
        else {
            return;
        };
        let complete = match event.expected_bytes {
            Some(expected) => self.sent >= expected,
            None => self.ended || self.inner.is_end_stream(),
        };
        event.bytes = self.sent;
        event.duration_ms = began.elapsed().as_millis() as u64;
        if !complete && event.reason.is_none() {
            event.reason = Some("aborted".into());
        }
        telemetry.metrics.request(
            route,
            event.status.unwrap_or(0),
            event.bytes,
            event.reason.as_deref(),
        );
        if keep {
            telemetry.recorder.record(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairs of `query` with a value, as recorded.
    fn kept_pairs(query: &str) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for_each_pair(query, |name, value| {
            if let Some(value) = loggable_value(value) {
                pairs.push((name.to_string(), value.to_string()));
            }
        });
        pairs
    }

    #[test]
    fn query_values_are_decoded_and_tamed() {
        let pairs =
            kept_pairs("mac=52%3A54%3A00%3A12%3A34%3A56&platform=efi&x&mac=&buildarch=a%0Ab+c");
        assert_eq!(
            pairs,
            [
                ("mac".to_string(), "52:54:00:12:34:56".to_string()),
                ("platform".to_string(), "efi".to_string()),
                ("buildarch".to_string(), "ab c".to_string()),
            ]
        );
        let long = format!("mac={}", "a".repeat(500));
        assert_eq!(kept_pairs(&long)[0].1.len(), MAX_QUERY_VALUE);
        let long_with_control = format!("mac=%07{}", "é".repeat(100));
        assert_eq!(
            kept_pairs(&long_with_control)[0].1,
            "é".repeat(MAX_QUERY_VALUE)
        );
        let unicode_control = "mac=a\u{85}b";
        assert_eq!(kept_pairs(unicode_control)[0].1, "ab");
    }

    #[test]
    fn a_query_with_nothing_to_decode_is_split_as_the_decoder_would() {
        for query in [
            "mac=52:54:00:12:34:56&platform=efi&buildarch=x86_64",
            "&&mac=a&&x&=v&y=&platform==efi=&",
            "",
            "é=ü&mac=é",
        ] {
            let mut split = Vec::new();
            for_each_pair(query, |name, value| {
                split.push((name.to_string(), value.to_string()))
            });
            let decoded: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            assert_eq!(split, decoded, "{query:?}");
        }
    }

    #[test]
    fn paths_are_cut_at_a_character_and_tokens_hidden() {
        assert_eq!(&*loggable_path("/files/vmlinuz"), "/files/vmlinuz");
        assert_eq!(&*loggable_path("/secrets/abcdef"), "/secrets/<token>");
        let long = format!("/files/{}", "é".repeat(300));
        let shown = loggable_path(&long);
        assert_eq!(shown.chars().count(), 256);
        assert!(long.starts_with(&*shown));
    }
}
