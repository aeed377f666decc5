//! The transport: one request through wasi:http's outgoing-handler, with
//! an overall deadline kept by the guest itself (a timer raced against the
//! response and each body read), since a call blocked in the host is not
//! interrupted by the host's own call deadline until it returns.

use std::time::Duration;

use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll::{self, Pollable};
use wasi::io::streams::StreamError;

use crate::api::{BaseUrl, Response, TransportError};

/// Largest answer read from the API.
const MAX_BODY: usize = 64 * 1024;

/// Waits for `p` until the deadline (monotonic ns); `false` on timeout.
fn wait(p: &Pollable, deadline: u64) -> bool {
    if p.ready() {
        return true;
    }
    let now = monotonic_clock::now();
    if now >= deadline {
        return false;
    }
    let timer = monotonic_clock::subscribe_duration(deadline - now);
    let ready = poll::poll(&[p, &timer]);
    ready.contains(&0)
}

fn map_error(e: &ErrorCode) -> TransportError {
    match e {
        ErrorCode::HttpRequestDenied => TransportError::Denied,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => TransportError::Timeout,
        ErrorCode::ConnectionRefused => TransportError::Connect("connection refused".into()),
        ErrorCode::DnsError(_)
        | ErrorCode::DnsTimeout
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => TransportError::Connect(format!("{e:?}")),
        other => TransportError::Other(format!("{other:?}")),
    }
}

/// Sends one request to `path` (with its query) on `base`'s origin;
/// `body` is JSON for a POST, `None` for a GET.
pub fn send(
    base: &BaseUrl,
    path: &str,
    authorization: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, TransportError> {
    let deadline = monotonic_clock::now().saturating_add(timeout.as_nanos() as u64);
    let other = |what: &str| TransportError::Other(what.to_string());
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("authorization".into(), authorization.as_bytes().to_vec()),
        ("accept".into(), b"application/json".to_vec()),
    ];
    if let Some(b) = body {
        headers.push(("content-type".into(), b"application/json".to_vec()));
        headers.push(("content-length".into(), b.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers).map_err(|e| other(&format!("header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    request
        .set_method(if body.is_some() {
            &Method::Post
        } else {
            &Method::Get
        })
        .map_err(|_| other("method"))?;
    request
        .set_scheme(Some(if base.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|_| other("scheme"))?;
    request
        .set_authority(Some(&base.authority))
        .map_err(|_| other("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| other("path"))?;
    let outgoing = request.body().map_err(|_| other("request body"))?;
    let options = RequestOptions::new();
    let ns = Some(timeout.as_nanos() as u64);
    // Backstops; the deadline below is what bounds the whole request.
    let _ = options.set_connect_timeout(ns);
    let _ = options.set_first_byte_timeout(ns);
    let _ = options.set_between_bytes_timeout(ns);
    let future = outgoing_handler::handle(request, Some(options)).map_err(|e| map_error(&e))?;
    if let Some(bytes) = body {
        let stream = outgoing.write().map_err(|_| other("request body stream"))?;
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| other(&format!("writing the request: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| map_error(&e))?;

    let response = loop {
        match future.get() {
            Some(Ok(Ok(r))) => break r,
            Some(Ok(Err(e))) => return Err(map_error(&e)),
            Some(Err(())) => return Err(other("response taken twice")),
            None => {
                if !wait(&future.subscribe(), deadline) {
                    return Err(TransportError::Timeout);
                }
            }
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response.consume().map_err(|_| other("response body"))?;
    let stream = incoming
        .stream()
        .map_err(|_| other("response body stream"))?;
    let mut data = Vec::new();
    loop {
        match stream.read(16 * 1024) {
            Ok(chunk) if chunk.is_empty() => {
                if !wait(&stream.subscribe(), deadline) {
                    return Err(TransportError::Timeout);
                }
            }
            Ok(chunk) => {
                data.extend_from_slice(&chunk);
                if data.len() > MAX_BODY {
                    return Err(other(&format!("answer larger than {MAX_BODY} bytes")));
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(other(&format!(
                    "reading the answer: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    drop(stream);
    let _ = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        retry_after,
        body: data,
    })
}
