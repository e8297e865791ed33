//! civex-console: the oversight console (DESIGN §14), web pages for
//! auditors and for registrars at a service counter.
//!
//! Every page is rendered on the server from AuditService and
//! OversightService calls made with the console's auditor certificate and
//! the logged-in user as `operator`, so the console's own use is in the
//! log. Proofs the pages show are checked here, against checkpoints whose
//! signatures are checked with the gateway's verifier key: the console
//! trusts the gateway's answers only as far as it can prove them.
//!
//! # Layout
//! - [`Console`]: binds, hands out login links, serves until shutdown.
//! - `session`: the one-time login token, sessions and their CSRF tokens.
//! - `gateway`: the calls, as the logged-in user, and the proofs checked.
//! - `pages`: the routes, one module per page, the page shell in `layout`.
//! - `chart`: the SVG chart of calls and refusals per hour.
//! - `i18n`: every text of the pages, in Chinese and English.
//! - `format`: times (UTC+8), decisions and actions as people read them.
//! - `assets/`: the style sheet and the one small script, embedded.

mod chart;
mod format;
mod gateway;
mod i18n;
mod pages;
mod session;

use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use civex_audit::keys::Verifier;
use tonic::transport::Channel;

/// How the console is run.
pub struct ConsoleConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Allow an address other than loopback. The console speaks plain
    /// HTTP: off loopback it belongs behind a proxy that terminates TLS.
    pub allow_remote: bool,
    /// A channel to the gateway with an auditor agency's certificate.
    pub channel: Channel,
    /// The gateway's verifier key: every checkpoint shown is checked with it.
    pub verifier: Verifier,
    /// Told each login link: the first, and the next whenever a login
    /// uses up the last (the token is good for one login).
    pub on_login_link: Box<dyn Fn(&str) + Send + Sync>,
    /// How long a session lasts from login.
    pub session_lifetime: Duration,
    /// The console's idea of now (the overview's last day ends here).
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl ConsoleConfig {
    /// A console on `listen` with the defaults: loopback only, login links
    /// printed to standard output, eight-hour sessions, the system clock.
    pub fn new(listen: SocketAddr, channel: Channel, verifier: Verifier) -> ConsoleConfig {
        ConsoleConfig {
            listen,
            allow_remote: false,
            channel,
            verifier,
            on_login_link: Box::new(|link| println!("console: {link}")),
            session_lifetime: Duration::from_secs(8 * 3600),
            clock: Arc::new(SystemTime::now),
        }
    }
}

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "the console speaks plain HTTP and listens on loopback only; {0} is not loopback \
         (allow it on purpose, behind a proxy that terminates TLS)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A console bound to its address, ready to serve.
pub struct Console {
    listener: tokio::net::TcpListener,
    app: Arc<pages::App>,
}

impl Console {
    /// Binds the listener and mints the first login token (told once serving starts).
    pub async fn bind(config: ConsoleConfig) -> Result<Console, ConsoleError> {
        if !config.listen.ip().is_loopback() && !config.allow_remote {
            return Err(ConsoleError::NotLoopback(config.listen));
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ConsoleError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ConsoleError::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Console {
            listener,
            app: Arc::new(pages::App::new(config, addr)),
        })
    }

    /// The address the console listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.app.addr
    }

    /// The login link good for the next login.
    pub fn login_link(&self) -> String {
        self.app.sessions.login_link(self.app.addr)
    }

    /// Tells the first login link, then serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        (self.app.on_login_link)(&self.login_link());
        axum::serve(self.listener, pages::router(self.app))
            .with_graceful_shutdown(shutdown)
            .await
    }
}
