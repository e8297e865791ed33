//! Witnesses (DESIGN §12, C2SP tlog-witness and tlog-cosignature).
//!
//! [`Witnesses`] is the gateway as a witness's client: it posts each
//! checkpoint it gives out to every `[[audit.witnesses]]` entry's
//! `add-checkpoint` with a consistency proof from the size that witness
//! last cosigned, and hands the checkpoint out only with the cosignatures
//! of a quorum. A witness that answers 409 with its size is asked again
//! from that size; one that has seen a larger tree than the checkpoint
//! (another gateway of a shared log went first) is asked with the newest
//! stored checkpoint instead.
//!
//! [`server`] is `civex witness`: the HTTP front of
//! [`civex_audit::witness::Witness`].
//!
//! Witnessing carries only public data (signed checkpoints, proofs and
//! cosignatures, each verified by who receives it), so it is plain HTTP,
//! as the spec allows; `https://` witness URLs are not supported yet.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use civex_audit::{
    checkpoint::{self, Checkpoint},
    keys::{KeyKind, Verifier},
    witness::AddCheckpoint,
};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::{
    config::AuditConfig,
    error::{Error, Reason},
    service::State,
};

/// How long one witness may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The content type of a 409's body naming the witness's size.
const SIZE_TYPE: &str = "text/x.tlog.size";
/// Rounds of asking again after a witness said it has seen a larger tree.
const ROUNDS: usize = 3;

/// The configured witnesses and what this gateway knows of each.
pub struct Witnesses {
    remotes: Vec<Remote>,
    quorum: usize,
    /// What is known of each witness, held while submitting (to all at once):
    /// submissions from one gateway never race each other.
    sessions: tokio::sync::Mutex<Vec<Session>>,
    /// The newest checkpoint the quorum cosigned, with those cosignatures.
    latest: std::sync::Mutex<Option<Checkpoint>>,
}

struct Remote {
    /// `<url>/add-checkpoint`.
    uri: Uri,
    /// `host:port`, to connect to and for the Host header.
    authority: String,
    key: Verifier,
}

#[derive(Default)]
struct Session {
    /// The size this witness last cosigned, as far as this gateway knows.
    size: u64,
    /// A kept-alive connection.
    connection: Option<SendRequest<Full<Bytes>>>,
}

/// What one witness made of one checkpoint.
enum Outcome {
    Cosigned(String),
    /// It has cosigned a larger tree than this checkpoint's.
    Ahead(u64),
    Failed(String),
}

impl Witnesses {
    /// The witnesses of `config`, checked; `None` when there are none.
    pub fn new(config: &AuditConfig) -> Result<Option<Witnesses>, String> {
        if config.witnesses.is_empty() {
            return match config.witness_quorum {
                Some(q) if q > 0 => Err(format!("audit: witness_quorum {q} with no [[audit.witnesses]]")),
                _ => Ok(None),
            };
        }
        let quorum = config.quorum();
        if quorum == 0 || quorum > config.witnesses.len() {
            return Err(format!(
                "audit: witness_quorum must be 1..={}, the number of witnesses",
                config.witnesses.len()
            ));
        }
        let mut remotes: Vec<Remote> = Vec::new();
        for w in &config.witnesses {
            let key = Verifier::parse_kind(&w.key, KeyKind::Cosignature)
                .map_err(|e| format!("audit.witnesses {}: key: {e}", w.url))?;
            let uri: Uri = format!("{}/add-checkpoint", w.url.trim_end_matches('/'))
                .parse()
                .map_err(|e| format!("audit.witnesses: url {:?}: {e}", w.url))?;
            let authority = match (uri.scheme_str(), uri.authority()) {
                (Some("http"), Some(a)) if a.port().is_some() => a.to_string(),
                (Some("http"), Some(a)) => format!("{a}:80"),
                _ => {
                    return Err(format!(
                        "audit.witnesses: url {:?} must be http://host[:port][/prefix]",
                        w.url
                    ));
                }
            };
            if remotes.iter().any(|r| r.key.key_id() == key.key_id()) {
                return Err(format!("audit.witnesses: {} is listed twice", key.name));
            }
            remotes.push(Remote { uri, authority, key });
        }
        Ok(Some(Witnesses {
            sessions: tokio::sync::Mutex::new(remotes.iter().map(|_| Session::default()).collect()),
            remotes,
            quorum,
            latest: std::sync::Mutex::new(None),
        }))
    }

    /// The newest checkpoint the quorum cosigned so far.
    pub fn latest(&self) -> Option<Checkpoint> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `cp` (or a newer stored checkpoint, if a witness has seen past it)
    /// with the cosignatures of at least a quorum; `AUDIT_UNAVAILABLE` when
    /// fewer cosign.
    pub async fn cosign(&self, state: &Arc<State>, mut cp: Checkpoint) -> Result<Checkpoint, Error> {
        let mut sessions = self.sessions.lock().await;
        let mut failures = Vec::new();
        for _ in 0..ROUNDS {
            let outcomes = futures::future::join_all(
                self.remotes
                    .iter()
                    .zip(sessions.iter_mut())
                    .map(|(remote, session)| submit(state, remote, session, &cp)),
            )
            .await;
            let mut lines = String::new();
            let mut ahead = false;
            failures.clear();
            for (remote, outcome) in self.remotes.iter().zip(outcomes) {
                let label = match outcome {
                    Outcome::Cosigned(line) => {
                        lines.push_str(&line);
                        "cosigned"
                    }
                    Outcome::Ahead(size) => {
                        ahead = true;
                        failures.push(format!("{} has cosigned a larger tree ({size})", remote.key.name));
                        "ahead"
                    }
                    Outcome::Failed(why) => {
                        failures.push(format!("{}: {why}", remote.key.name));
                        "failed"
                    }
                };
                state.metrics.witness(&remote.key.name, label);
            }
            let cosigned = self.remotes.len() - failures.len();
            if cosigned >= self.quorum {
                let cosigned = Checkpoint {
                    note: format!("{}{lines}", cp.note),
                    ..cp
                };
                let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
                if latest.as_ref().is_none_or(|l| l.size <= cosigned.size) {
                    *latest = Some(cosigned.clone());
                }
                return Ok(cosigned);
            }
            let newer = match ahead {
                true => newest_stored(state).await?.filter(|newer| newer.size > cp.size),
                false => None,
            };
            match newer {
                Some(newer) => cp = newer,
                None => break,
            }
        }
        Err(Error::new(
            Reason::AuditUnavailable,
            format!(
                "the checkpoint of size {} reached {} of the {} witness cosignatures required: {}",
                cp.size,
                self.remotes.len() - failures.len(),
                self.quorum,
                failures.join("; ")
            ),
        )
        .with_retry_after(Duration::from_secs(1)))
    }

    /// Keeps [`Witnesses::latest`] current: each newer stored checkpoint is
    /// cosigned as it appears.
    pub async fn follow(state: Arc<State>) {
        let Some(witnesses) = state.witnesses.as_ref() else {
            return;
        };
        let mut last_error = String::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let cosigned = witnesses.latest().map_or(0, |cp| cp.size);
            let result = match newest_stored(&state).await {
                Ok(Some(cp)) if cp.size > cosigned => witnesses.cosign(&state, cp).await.map(drop),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => last_error.clear(),
                Err(e) if e.message != last_error => {
                    tracing::warn!(cause = %e.message, "checkpoints are not being cosigned");
                    last_error = e.message;
                }
                Err(_) => {}
            }
        }
    }
}

/// The newest stored checkpoint, verified.
async fn newest_stored(state: &Arc<State>) -> Result<Option<Checkpoint>, Error> {
    let read = state.clone();
    let newest = tokio::task::spawn_blocking(move || read.audit.latest_checkpoint())
        .await
        .map_err(Error::internal)??;
    newest
        .map(|(_, note)| checkpoint::verify(&note, state.audit.verifier()).map_err(Error::internal))
        .transpose()
}

/// Asks one witness to cosign `cp`, from the size it last cosigned; once
/// more from the size a 409 names.
async fn submit(state: &Arc<State>, remote: &Remote, session: &mut Session, cp: &Checkpoint) -> Outcome {
    for _ in 0..2 {
        let old = session.size;
        if old > cp.size {
            return Outcome::Ahead(old);
        }
        let proof = if old == 0 || old == cp.size {
            Vec::new()
        } else {
            let read = state.clone();
            let size = cp.size;
            match tokio::task::spawn_blocking(move || read.audit.consistency_proof(old, size)).await {
                Ok(Ok(proof)) => proof,
                Ok(Err(e)) => return Outcome::Failed(format!("no consistency proof from {old}: {e}")),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        };
        let request = AddCheckpoint {
            old,
            proof,
            note: cp.note.clone(),
        };
        let (status, size_type, body) = match post(remote, session, request.encode()).await {
            Ok(answer) => answer,
            Err(e) => return Outcome::Failed(e),
        };
        let text = String::from_utf8_lossy(&body);
        match status {
            StatusCode::OK => {
                let Ok((note_body, _)) = checkpoint::split(&cp.note) else {
                    return Outcome::Failed("the checkpoint is not a note".into());
                };
                // Only its own valid cosignature is kept; anything else in the answer is ignored.
                let Some(line) = text
                    .lines()
                    .map(|l| format!("{l}\n"))
                    .find(|l| checkpoint::cosigned_at(note_body, l, &remote.key).is_some())
                else {
                    return Outcome::Failed("it answered 200 without a valid cosignature".into());
                };
                session.size = cp.size;
                return Outcome::Cosigned(line);
            }
            StatusCode::CONFLICT if size_type => match text.trim_end_matches('\n').parse::<u64>() {
                Ok(size) => session.size = size,
                Err(_) => return Outcome::Failed(format!("409 with a malformed size {text:?}")),
            },
            status => return Outcome::Failed(format!("{status}: {}", text.trim())),
        }
    }
    Outcome::Failed("it answered 409 again from the size it named".into())
}

/// POSTs `body` on the session's kept-alive connection (a new one if it
/// was closed): the status, whether the answer is a `text/x.tlog.size`, and the body.
async fn post(remote: &Remote, session: &mut Session, body: String) -> Result<(StatusCode, bool, Bytes), String> {
    let body = Bytes::from(body);
    let mut last = String::new();
    for _ in 0..2 {
        let sender = match session.connection.take().filter(|c| !c.is_closed()) {
            Some(sender) => sender,
            None => connect(&remote.authority).await?,
        };
        // The origin form: the path alone, as servers must accept.
        let path = remote.uri.path_and_query().map_or("/add-checkpoint", |p| p.as_str());
        let request = Request::post(path)
            .header(header::HOST, &remote.authority)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(TIMEOUT, exchange(sender, request)).await {
            Ok(Ok((sender, answer))) => {
                session.connection = Some(sender);
                return Ok(answer);
            }
            // A kept-alive connection the witness closed: once more on a new one.
            Ok(Err(e)) => last = e,
            Err(_) => return Err(format!("no answer within {TIMEOUT:?}")),
        }
    }
    Err(last)
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| format!("cannot connect to {authority} within {TIMEOUT:?}"))?
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(cause = %e, "a witness connection ended");
        }
    });
    Ok(sender)
}

type Answer = (StatusCode, bool, Bytes);

async fn exchange(
    mut sender: SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(SendRequest<Full<Bytes>>, Answer), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let size_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.split(';').next().is_some_and(|essence| essence.trim() == SIZE_TYPE));
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((sender, (status, size_type, body)))
}

/// `civex witness`: `POST /add-checkpoint` over plain HTTP, and `GET
/// /checkpoint/<origin>` for the latest cosigned checkpoint of a log
/// (the witness's own view, for monitors).
pub mod server {
    use std::sync::Arc;

    use axum::{
        Router,
        body::Bytes,
        extract::{Path, State},
        http::{HeaderValue, StatusCode, header},
        response::{IntoResponse, Response},
        routing::{get, post},
    };
    use civex_audit::witness::{Refusal, Witness};

    /// Request bodies larger than this are refused: 63 proof lines and a checkpoint with signatures fit well within.
    const MAX_BODY: usize = 64 * 1024;

    /// Serves `witness` on `listener` until the task is dropped.
    pub async fn serve(listener: tokio::net::TcpListener, witness: Arc<Witness>) -> std::io::Result<()> {
        axum::serve(listener, router(witness)).await
    }

    pub fn router(witness: Arc<Witness>) -> Router {
        Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .route("/checkpoint/{*origin}", get(latest))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(witness)
    }

    async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
        let answer = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
        match answer {
            Ok(Ok(cosignature)) => cosignature.into_response(),
            Ok(Err(refusal)) => refused(refusal),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        }
    }

    async fn latest(State(witness): State<Arc<Witness>>, Path(origin): Path<String>) -> Response {
        match witness.latest(&origin) {
            Ok(Some(note)) => {
                let mut response = note.into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Ok(None) => (StatusCode::NOT_FOUND, format!("nothing cosigned for {origin:?}\n")).into_response(),
            Err(refusal) => refused(refusal),
        }
    }

    fn refused(refusal: Refusal) -> Response {
        let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Refusal::OldSizeMismatch { stored, .. } = refusal {
            let mut response = (status, format!("{stored}\n")).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(super::SIZE_TYPE));
            return response;
        }
        (status, format!("{refusal}\n")).into_response()
    }
}
