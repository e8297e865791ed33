//! The log for standard tools (DESIGN §12): C2SP tlog-tiles over HTTPS on
//! the gateway's own port, beside gRPC and under the same mutual TLS, for
//! agencies holding the `auditor` role. `GET /checkpoint` is the newest
//! signed checkpoint (`no-store`) — with witnesses configured, the newest
//! that a quorum cosigned, with their cosignatures; `GET /tile/<L>/<N>[.p/<W>]` and `GET
//! /tile/entries/<N>[.p/<W>]` are hash tiles and entry bundles
//! (immutable), served as far as the newest stored checkpoint's tree, which
//! holds every tile of the tree of the checkpoint `/checkpoint` gives.
//!
//! Reading tiles is not itself a log entry: a mirror would never catch up
//! with a log that grows by one record per tile it reads.

use std::sync::Arc;

use axum::{
    Extension, Router,
    extract::{Path, State as Shared},
    response::{IntoResponse, Response},
    routing::get,
};
use civex_audit::tlog::Tile;
use http::{HeaderValue, header};

use super::State;
use crate::{
    error::{Error, Reason},
    net::identity::PeerIdentity,
    policy::access::Role,
};

/// Tiles and bundles never change once served.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The routes, to merge with the gRPC services'.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .with_state(state)
}

async fn checkpoint(Shared(state): Shared<Arc<State>>, peer: Option<Extension<PeerIdentity>>) -> Response {
    let answer = async {
        auditor(&state, peer)?;
        let note = match &state.witnesses {
            // Tiles go at least this far: the newest stored checkpoint is never older.
            Some(witnesses) => witnesses.latest().map(|cp| cp.note).ok_or_else(|| {
                Error::new(
                    Reason::AuditUnavailable,
                    "no checkpoint has reached the witness quorum yet",
                )
                .with_retry_after(std::time::Duration::from_secs(1))
            })?,
            None => newest(&state).await?.1,
        };
        Ok(body(note.into_bytes(), "text/plain; charset=utf-8", "no-store"))
    };
    counted(&state, "checkpoint", answer.await)
}

async fn tile(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<String>,
    peer: Option<Extension<PeerIdentity>>,
) -> Response {
    let answer = async {
        auditor(&state, peer)?;
        let tile = Tile::parse(&path)
            .ok_or_else(|| Error::new(Reason::InvalidRequest, format!("tile/{path} is not a tlog-tiles path")))?;
        let (size, _) = newest(&state).await?;
        let read = state.clone();
        let bytes = tokio::task::spawn_blocking(move || read.audit.tile(&tile, size))
            .await
            .map_err(Error::internal)??
            .ok_or_else(|| {
                Refused::Missing(format!(
                    "tile/{path} is not in the tree of the newest checkpoint (size {size})"
                ))
            })?;
        Ok(body(bytes, "application/octet-stream", IMMUTABLE))
    };
    let resource = if path.starts_with("entries/") {
        "entries"
    } else {
        "tile"
    };
    counted(&state, resource, answer.await)
}

/// Any other path: a gRPC call to a method nobody serves is UNIMPLEMENTED,
/// as gRPC clients expect; anything else is HTTP's 404.
pub async fn fallback(request: axum::extract::Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("no such method").into_http::<axum::body::Body>();
    }
    Refused::Missing("no such resource: the tiles are under /checkpoint and /tile/".into()).into_response()
}

/// The answer, counted in metrics by resource and status (not logged: DESIGN §12).
fn counted(state: &State, resource: &'static str, answer: Result<Response, Refused>) -> Response {
    let response = answer.unwrap_or_else(IntoResponse::into_response);
    state.metrics.tile_read(resource, response.status().as_u16());
    response
}

/// Only auditors read the log's tiles, as they alone read it through AuditService.
fn auditor(state: &State, peer: Option<Extension<PeerIdentity>>) -> Result<(), Error> {
    state.peer_caller(peer.as_deref(), &[Role::Auditor]).map(drop)
}

/// The newest checkpoint: its tree size and note.
async fn newest(state: &Arc<State>) -> Result<(u64, String), Refused> {
    let read = state.clone();
    tokio::task::spawn_blocking(move || read.audit.latest_checkpoint())
        .await
        .map_err(Error::internal)??
        .ok_or_else(|| Refused::Missing("the log has no checkpoint yet".into()))
}

fn body(bytes: Vec<u8>, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// Why a resource is not served: a refusal with its reason, or a resource
/// that is not there (HTTP's 404, which no reason of the contract means).
enum Refused {
    Error(Error),
    Missing(String),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused::Error(e)
    }
}

impl From<civex_audit::AuditError> for Refused {
    fn from(e: civex_audit::AuditError) -> Refused {
        Refused::Error(e.into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Error(e) => {
                tracing::debug!(reason = %e.reason, message = %e.message, "tile request refused");
                e.into_http().into_response()
            }
            Refused::Missing(message) => (http::StatusCode::NOT_FOUND, format!("{message}\n")).into_response(),
        }
    }
}
