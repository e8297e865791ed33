//! Logins and sessions. A login takes the one-time token the console
//! printed and a user name; it uses the token up (the console tells the
//! next one) and starts a session: a random id in an HttpOnly,
//! SameSite=Strict cookie, with a CSRF token of its own that every form
//! carries. Sessions live in memory: a restarted console asks everyone to
//! log in again.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::RngCore;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "civex_session";
/// At most this many sessions at once; the oldest goes first.
const MAX_SESSIONS: usize = 1000;
/// Longest user name: the gateway's operator labels go to 128, but a name
/// people type need not.
const MAX_USER: usize = 64;

/// A logged-in user.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The operator label every call is made with.
    pub user: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    expires: Instant,
}

/// Why a login is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginError {
    /// Not the token the console printed last (or already used).
    Token,
    /// The user name is not one an operator label may be.
    User(UserError),
}

/// What is wrong with a user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserError {
    Empty,
    TooLong,
    /// Only ASCII letters, digits and `.` `_` `-` `@` (gRPC metadata is ASCII).
    Characters,
    /// A run of 15 or more digits, as an ID number has: labels never carry one.
    IdDigits,
}

/// The login token and the sessions.
pub(crate) struct Sessions {
    token: Mutex<String>,
    live: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
}

impl Sessions {
    pub(crate) fn new(lifetime: Duration) -> Sessions {
        Sessions {
            token: Mutex::new(random_token()),
            live: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    /// The link that logs in with the current token.
    pub(crate) fn login_link(&self, addr: SocketAddr) -> String {
        format!("http://{addr}/login?token={}", lock(&self.token))
    }

    /// Whether `token` is the current login token.
    pub(crate) fn token_is_current(&self, token: &str) -> bool {
        same(token, &lock(&self.token))
    }

    /// Logs `user` in with `token`, using the token up. Returns the new
    /// session's id and the session.
    pub(crate) fn login(&self, token: &str, user: &str) -> Result<(String, Session), LoginError> {
        check_user(user).map_err(LoginError::User)?;
        {
            let mut current = lock(&self.token);
            if !same(token, &current) {
                return Err(LoginError::Token);
            }
            *current = random_token();
        }
        let session = Session {
            user: user.to_owned(),
            csrf: random_token(),
            expires: Instant::now() + self.lifetime,
        };
        let id = random_token();
        let mut live = lock(&self.live);
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.expires).map(|(id, _)| id.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The live session with this id.
    pub(crate) fn find(&self, id: &str) -> Option<Session> {
        let mut live = lock(&self.live);
        match live.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                live.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn logout(&self, id: &str) {
        lock(&self.live).remove(id);
    }
}

/// Checks a user name: it becomes the `operator` of every call.
pub(crate) fn check_user(user: &str) -> Result<(), UserError> {
    if user.is_empty() {
        return Err(UserError::Empty);
    }
    if user.len() > MAX_USER {
        return Err(UserError::TooLong);
    }
    if !user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)) {
        return Err(UserError::Characters);
    }
    let longest_digits = user
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if longest_digits >= 15 {
        return Err(UserError::IdDigits);
    }
    Ok(())
}

/// 128 random bits from the operating system's generator, as hex.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing held under these locks can be left half-changed by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_logs_in_once() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let link = sessions.login_link(addr);
        let token = link.rsplit('=').next().unwrap().to_owned();
        assert_eq!(
            sessions.login(&"0".repeat(32), "li.wei").unwrap_err(),
            LoginError::Token
        );
        let (id, session) = sessions.login(&token, "li.wei").unwrap();
        assert_eq!(session.user, "li.wei");
        assert_eq!(sessions.find(&id).unwrap().csrf, session.csrf);
        assert_eq!(sessions.login(&token, "li.wei").unwrap_err(), LoginError::Token);
        assert_ne!(sessions.login_link(addr), link);
        sessions.logout(&id);
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn user_names_are_operator_labels() {
        assert_eq!(check_user("auditor-7@qujing"), Ok(()));
        assert_eq!(check_user(""), Err(UserError::Empty));
        assert_eq!(check_user("李伟"), Err(UserError::Characters));
        assert_eq!(check_user("a b"), Err(UserError::Characters));
        assert_eq!(check_user("u530302199003070011"), Err(UserError::IdDigits));
        assert_eq!(check_user(&"a".repeat(65)), Err(UserError::TooLong));
    }

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::new(Duration::ZERO);
        let token = sessions.login_link("127.0.0.1:1".parse().unwrap());
        let (id, _) = sessions.login(token.rsplit('=').next().unwrap(), "li.wei").unwrap();
        assert!(sessions.find(&id).is_none());
    }
}
