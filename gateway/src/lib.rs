//! civex-gateway: the server library of civex, a consent-scoped gateway
//! through which government departments obtain verified facts about a
//! citizen, keyed on the citizen ID number.
//!
//! A call passes, in one direction: TLS handshake (client certificate checked
//! against the civex CA and its CRL) → peer identity → agency (active?) →
//! role → rate limit → citizen ID → access rights → consent → department
//! adapters → audit append (durable) → response. A refusal at any step is
//! recorded like an answer. The command line lives in `civex-cli`; this
//! crate installs no tracing subscriber and parses no arguments.
//!
//! # Layout
//! - [`Gateway`] (this file): wiring: stores, keys, log, services, listener, shutdown.
//! - [`config`]: the `Config` struct, TOML and `CIVEX_*` overrides, demo defaults.
//! - [`net`]: the mTLS acceptor, the agency a certificate names, per-agency quotas.
//! - [`policy`]: roles, rights, purposes, the land rule, the eligibility predicates.
//! - [`directory`]: the agencies, cached over their store.
//! - [`changes`]: following what other gateways of a shared store change.
//! - [`consent`]: what a consent says, its signature, the rule each use is checked against.
//! - [`commitments`]: notification and commitment: receipts, sampling and the later check.
//! - [`authority`]: certificates from CSRs, revocation and the CRL.
//! - [`departments`]: fan-out to the departments' adapters with deadlines.
//! - [`service`]: the gRPC services, each call recorded through one path.
//! - [`error`]: the one place refusals become gRPC statuses.
//! - [`store`]: the storage traits and the embedded engine.
//! - [`clock`]: time, injectable (from `civex-audit`).

pub mod authority;
pub mod changes;
pub mod commitments;
pub mod config;
pub mod consent;
pub mod departments;
pub mod directory;
pub mod error;
pub mod metrics;
pub mod net;
pub mod oversight;
pub mod policy;
pub mod service;
pub mod store;
pub mod witness;

pub use civex_audit::clock;

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use civex_adapters::{Adapter, AdapterError, Department, RegistryStore, RemoteAdapter, RemoteAdapterConfig};
use civex_audit::{AuditLog, Pseudonymizer, WriterConfig, keys::Signer};
use civex_proto::v1::{
    admin_service_server::AdminServiceServer, audit_service_server::AuditServiceServer,
    commitment_service_server::CommitmentServiceServer, consent_service_server::ConsentServiceServer,
    correction_service_server::CorrectionServiceServer, exchange_service_server::ExchangeServiceServer,
    oversight_service_server::OversightServiceServer,
};
use tokio::net::TcpListener;
use tonic::{service::Routes, transport::Server};
use tonic_health::ServingStatus;

use crate::{
    authority::{Authority, Ca},
    clock::{Clock, SystemClock},
    config::{Config, DepartmentConfig},
    departments::Departments,
    directory::Directory,
    net::{limits::RateLimiters, tls},
    policy::access::Agency,
    service::{State, admin::Admin, audit::Audit, consent::Consents, exchange::Exchange},
};

/// Why a gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Source(#[from] AdapterError),
    #[error(transparent)]
    Signing(#[from] civex_audit::keys::SigningError),
    #[error(transparent)]
    Audit(#[from] civex_audit::AuditError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot load the CA: {0}")]
    Ca(authority::PkiError),
    #[error("cannot open the agency or revocation store: {0}")]
    Authority(error::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A gateway bound to its port, ready to serve.
pub struct Gateway {
    config: Config,
    listener: TcpListener,
    /// Bound when `[metrics] listen` is set.
    metrics_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    state: Arc<State>,
    stores: store::Stores,
    tls: Arc<rustls::ServerConfig>,
    tls_handles: tls::TlsHandles,
}

/// Reloads what may change under a running gateway.
#[derive(Debug, Clone)]
pub struct Reloader {
    tls: tls::TlsHandles,
}

impl Reloader {
    /// Re-reads the gateway's certificate and key; new handshakes use them.
    pub fn reload(&self) -> Result<(), tls::TlsError> {
        self.tls.cert.reload()?;
        tracing::info!("server certificate reloaded");
        Ok(())
    }
}

/// One adapter per department: its registry in `registries`, or the
/// department's own system.
fn adapters(config: &Config, registries: &dyn RegistryStore) -> Result<Vec<Arc<dyn Adapter>>, StartError> {
    let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
    for department in Department::ALL {
        match config.departments.get(department.code()) {
            Some(DepartmentConfig::Remote(r)) => {
                let read = |path: &std::path::Path| {
                    std::fs::read_to_string(path).map_err(|source| tls::TlsError::Read {
                        path: path.to_owned(),
                        source,
                    })
                };
                let remote = RemoteAdapterConfig {
                    endpoint: r.endpoint.clone(),
                    ca_pem: read(&r.ca)?,
                    cert_pem: read(&r.cert)?,
                    key_pem: read(&r.key)?,
                    deadline: Duration::from_millis(r.deadline_ms),
                    max_in_flight: r.max_in_flight,
                    failure_threshold: r.failure_threshold,
                    open_for: Duration::from_millis(r.open_ms),
                };
                adapters.push(Arc::new(RemoteAdapter::new(department, remote)?));
            }
            Some(DepartmentConfig::Embedded) | None => adapters.push(registries.open(department)?),
        }
    }
    Ok(adapters)
}

/// Loads the CA (certificate and key) if the config names its key; the key
/// file must not be readable by group or others.
fn load_ca(config: &Config) -> Result<Option<Ca>, StartError> {
    let Some(key_path) = &config.tls.ca_key else {
        return Ok(None);
    };
    tls::check_private(key_path)?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|source| tls::TlsError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let ca = Ca::load(&read(&config.tls.ca_cert)?, &read(key_path)?).map_err(StartError::Ca)?;
    Ok(Some(ca))
}

impl Gateway {
    /// Validates `config`, opens the data directory, loads keys and
    /// certificates and binds the port: every error surfaces before serving.
    pub async fn bind(config: Config) -> Result<Gateway, StartError> {
        Gateway::bind_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Gateway::bind`], with the clock consents are checked against.
    pub async fn bind_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Gateway, StartError> {
        Gateway::bind_inner(config, clock, true).await
    }

    /// Benchmark only: a gateway whose audit log is not flushed before
    /// answering (`durable_audit = false`), to show what durability costs.
    /// It exists only with the `bench` feature, which only `civex-bench`
    /// turns on; neither the config nor the `civex` command can reach it.
    #[cfg(feature = "bench")]
    pub async fn bind_for_benchmark(config: Config, durable_audit: bool) -> Result<Gateway, StartError> {
        Gateway::bind_inner(config, Arc::new(SystemClock), durable_audit).await
    }

    async fn bind_inner(config: Config, clock: Arc<dyn Clock>, durable_audit: bool) -> Result<Gateway, StartError> {
        config.validate()?;
        let ca = load_ca(&config)?;
        let (tls, tls_handles) = tls::server_config(
            &config.tls.ca_cert,
            &config.tls.server_cert,
            &config.tls.server_key,
            None,
        )?;
        // With the postgres engine the data directory holds only keys.
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| store::StoreError(format!("data directory {}: {e}", config.data_dir.display())))?;
        let stores = store::open_engine(&config.storage, &config.data_dir)?;
        let signer = Arc::new(Signer::load_or_create(
            &config.data_dir,
            &format!("civex/{}", config.name),
        )?);
        let pseudonyms = Pseudonymizer::load_or_create(&config.pseudonym_key_path())?;
        let adapters = adapters(&config, stores.registries.as_ref())?;
        let writer = WriterConfig {
            checkpoint_every: config.audit.checkpoint_every,
            checkpoint_interval: Duration::from_millis(config.audit.checkpoint_interval_ms),
            durable: durable_audit,
        };
        let (audit, opened) = AuditLog::open(
            stores.log.clone(),
            stores.audit_index.clone(),
            signer.clone(),
            clock.clone(),
            writer,
        )?;
        tracing::info!(
            records = opened.size,
            checkpoint = opened.latest.as_ref().map_or(0, |c| c.size),
            "audit log opened: its latest checkpoint matches the stored tree"
        );
        let ca_dir = config.tls.ca_cert.parent().unwrap_or(Path::new("."));
        let authority = Authority::open(
            stores.certificates.clone(),
            ca,
            tls_handles.verifier.clone(),
            &config.data_dir,
            ca_dir,
            config.tls.certificate_days,
            config.tls.crl_days,
        )
        .await
        .map_err(StartError::Authority)?;
        let directory = Directory::open(stores.agencies.clone(), config.agencies.iter().map(Agency::from))
            .await
            .map_err(StartError::Authority)?;
        let state = Arc::new(State {
            directory,
            consents: stores.consents.clone(),
            departments: Departments::new(adapters, config.limits.adapter_deadline()),
            signer,
            clock,
            limits: config.limits.clone(),
            thresholds: config.predicates.clone(),
            audit,
            pseudonyms,
            authority,
            limiters: Arc::new(RateLimiters::new(config.limits.default_rate)),
            freshness: match stores.changes {
                Some(_) => changes::Freshness::shared(),
                None => changes::Freshness::local(),
            },
            oversight: stores.oversight.clone(),
            commitments: stores.commitments.clone(),
            matters: config.commitments.clone(),
            corrections: stores.corrections.clone(),
            metrics: metrics::Metrics::default(),
            witnesses: witness::Witnesses::new(&config.audit)
                .map_err(|e| StartError::Config(config::ConfigError::Invalid(e)))?,
        });
        let observed = Arc::downgrade(&state);
        let _ = state
            .audit
            .observe_batches(Box::new(move |records, took, checkpointed| {
                if let Some(state) = observed.upgrade() {
                    state.metrics.batch(records, took, checkpointed);
                }
            }));
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Gateway {
            config,
            listener,
            metrics_listener,
            local_addr,
            state,
            stores,
            tls,
            tls_handles,
        })
    }

    /// What a SIGHUP reloads: the server certificate and key files.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            tls: self.tls_handles.clone(),
        }
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served, if `[metrics] listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The gateway's public verifier key (C2SP signed-note format).
    pub fn verifier_key(&self) -> String {
        self.state.signer.verifier_key()
    }

    /// Serves until `shutdown` resolves, then: health NOT_SERVING → stop
    /// accepting → drain in-flight calls for at most `limits.shutdown_grace_ms`
    /// → flush the audit log and write a final checkpoint → flush the stores.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
        let limits = &self.config.limits;
        let (health, health_service) = tonic_health::server::health_reporter();
        // Health follows the audit log: when it cannot be written, nothing is served.
        let mut audit_ok = self.state.audit.health();
        let mirror = tokio::spawn({
            let health = health.clone();
            async move {
                loop {
                    let ok = *audit_ok.borrow_and_update();
                    let status = if ok {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    for service in SERVICES {
                        health.set_service_status(service, status).await;
                    }
                    if audit_ok.changed().await.is_err() {
                        return;
                    }
                }
            }
        });
        let follow = self
            .stores
            .changes
            .clone()
            .map(|feed| tokio::spawn(changes::follow(feed, self.state.clone())));
        let rules = self.config.alerts.resolve().map_err(StartError::Config)?;
        let alerts = rules.any_enabled().then(|| {
            tokio::spawn(oversight::follow(
                self.state.clone(),
                oversight::Oversight::new(self.stores.oversight.clone(), rules),
            ))
        });
        let verifying = tokio::spawn(commitments::follow(self.state.clone()));
        let witnessing = self
            .state
            .witnesses
            .is_some()
            .then(|| tokio::spawn(witness::Witnesses::follow(self.state.clone())));
        let share = self.stores.load.clone().map(|load| {
            // Unique per process: a restarted gateway publishes afresh.
            let gateway = format!("{}/{:016x}", self.local_addr, rand::random::<u64>());
            tokio::spawn(net::limits::share(load, gateway, self.state.limiters.clone()))
        });
        // Re-sign the CRL at half its validity, so the verifier never holds an expired one.
        let crl_refresh = tokio::spawn({
            let state = self.state.clone();
            async move {
                let period = state.authority.crl_validity() / 2;
                loop {
                    tokio::time::sleep(period).await;
                    if let Err(e) = state.authority.publish_crl().await {
                        tracing::error!(cause = %e, "cannot re-sign the CRL");
                    }
                }
            }
        });
        let (reflection, reflection_v1alpha) = (reflection().build_v1()?, reflection().build_v1alpha()?);
        let max = limits.max_message_bytes;
        let connections = tls::Connections::default();
        let metrics = self.metrics_listener.map(|listener| {
            let scrape = metrics::Scrape {
                state: self.state.clone(),
                connections: connections.clone(),
                server_cert: self.tls_handles.cert.clone(),
            };
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, metrics::router(scrape)).await {
                    tracing::error!(cause = %e, "the metrics listener stopped");
                }
            })
        });
        let incoming = tls::incoming(
            self.listener,
            self.tls,
            limits.admission(),
            tls::agencies(),
            connections,
        );
        tracing::info!(addr = %self.local_addr, "serving");
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = async {
            shutdown.await;
            let _ = stopping.send(());
            tracing::info!(
                grace_ms = limits.shutdown_grace_ms,
                "shutting down: draining in-flight calls"
            );
            mirror.abort();
            crl_refresh.abort();
            for service in SERVICES {
                health.set_service_status(service, ServingStatus::NotServing).await;
            }
        };
        let state = &self.state;
        let grpc = Routes::new(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(ExchangeServiceServer::new(Exchange::new(state.clone())).max_decoding_message_size(max))
            .add_service(ConsentServiceServer::new(Consents::new(state.clone())).max_decoding_message_size(max))
            .add_service(AuditServiceServer::new(Audit::new(state.clone())).max_decoding_message_size(max))
            .add_service(AdminServiceServer::new(Admin::new(state.clone())).max_decoding_message_size(max))
            .add_service(
                OversightServiceServer::new(service::oversight::Oversight::new(state.clone()))
                    .max_decoding_message_size(max),
            )
            .add_service(
                CommitmentServiceServer::new(service::commitment::Commitments::new(state.clone()))
                    .max_decoding_message_size(max),
            )
            .add_service(
                CorrectionServiceServer::new(service::correction::Corrections::new(state.clone()))
                    .max_decoding_message_size(max),
            );
        // The log's tiles beside the services, on the same port (DESIGN §12).
        let routes = Routes::from(
            grpc.into_axum_router()
                .merge(service::tlog::router(state.clone()))
                .fallback(service::tlog::fallback),
        );
        let served = Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_max_header_list_size(16 * 1024)
            .http2_max_pending_accept_reset_streams(Some(64))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .layer(service::guard::GuardLayer::new(state.clone()))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, signal);
        // When the grace period ends the log is closed all the same: a call
        // still running then is refused AUDIT_UNAVAILABLE at its append, so
        // nothing it would release leaves without its record.
        let grace = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(Duration::from_millis(limits.shutdown_grace_ms)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = served => served?,
            () = grace => tracing::warn!(
                grace_ms = limits.shutdown_grace_ms,
                "the grace period ended with calls in flight: they were cut off"
            ),
        }
        self.state.audit.close().await;
        // Calls still draining were checked against changes followed until now.
        for task in follow
            .into_iter()
            .chain(share)
            .chain(alerts)
            .chain(metrics)
            .chain(witnessing)
            .chain([verifying])
        {
            task.abort();
        }
        if let civex_audit::LogEngine::Local { ledger, .. } = &self.stores.log {
            ledger.flush().map_err(store::StoreError)?;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Server reflection, in both versions clients speak (grpcurl and most
/// tools v1; Python's grpcio-reflection only v1alpha): every message the
/// gateway sends, the `google.rpc` error details among them, so a client
/// with nothing but reflection can read a refusal's reason; and only the
/// services it answers (not `DepartmentSourceService`, which departments serve).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(civex_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET);
    SERVICES[1..]
        .iter()
        .chain(&[
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ])
        .fold(builder, |builder, name| builder.with_service_name(*name))
}

/// The services health is reported for: the whole server ("") and each gRPC service.
const SERVICES: [&str; 8] = [
    "",
    "civex.v1.ExchangeService",
    "civex.v1.ConsentService",
    "civex.v1.AuditService",
    "civex.v1.AdminService",
    "civex.v1.OversightService",
    "civex.v1.CommitmentService",
    "civex.v1.CorrectionService",
];

/// Binds and serves `config` until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    Gateway::bind(config).await?.serve(shutdown).await
}
