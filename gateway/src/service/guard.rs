//! What every request passes through before its handler: a tower layer over
//! the whole server. It marks the connection busy (for its idle timeout),
//! and it records the calls that never reach a handler because the decoder
//! refused them (over-size, malformed protobuf, invalid UTF-8): such a call
//! gets `INVALID_ARGUMENT` / `MALFORMED_REQUEST` with an `ErrorInfo`, and its
//! record, like any other (DESIGN §11).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use super::State;
use crate::{
    error::{Error, Reason},
    net::identity::PeerIdentity,
};

/// The services whose calls are recorded: `civex.v1.<Service>/<Method>`.
const RECORDED: &[&str] = &["ExchangeService", "ConsentService", "AuditService", "AdminService"];

/// Set by [`State::call`] once a handler runs the request.
#[derive(Debug, Clone, Default)]
pub struct Handled(Arc<AtomicBool>);

impl Handled {
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct GuardLayer {
    state: Arc<State>,
}

impl GuardLayer {
    pub fn new(state: Arc<State>) -> GuardLayer {
        GuardLayer { state }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    state: Arc<State>,
}

/// `ExchangeService/Query` for `/civex.v1.ExchangeService/Query`, if recorded.
fn recorded_method(path: &str) -> Option<&str> {
    let method = path.strip_prefix("/civex.v1.")?;
    let (service, _) = method.split_once('/')?;
    RECORDED.contains(&service).then_some(method)
}

impl<S, B, R> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let peer = request.extensions().get::<PeerIdentity>().cloned();
        let method = recorded_method(request.uri().path()).map(str::to_owned);
        let handled = Handled::default();
        request.extensions_mut().insert(handled.clone());
        let in_flight = peer.as_ref().map(|p| p.activity.begin());
        Box::pin(async move {
            let response = inner.call(request).await?;
            drop(in_flight);
            let Some(method) = method.filter(|_| !handled.get()) else {
                return Ok(response);
            };
            // An unknown method is not a decoder refusal, and its path is caller text: passed on as it is.
            let Some(refused) = Status::from_header_map(response.headers())
                .filter(|s| !matches!(s.code(), Code::Ok | Code::Unimplemented))
            else {
                return Ok(response);
            };
            let agency = peer.map(|p| p.agency).unwrap_or_default();
            let error = Error::new(
                Reason::MalformedRequest,
                format!("the request could not be decoded: {}", refused.message()),
            );
            let status = match state.record_undecoded(&agency, &method).await {
                Ok(()) => Status::from(error),
                Err(e) => Status::from(e),
            };
            Ok(status.into_http())
        })
    }
}
