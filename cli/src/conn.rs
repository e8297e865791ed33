//! What every client command shares: where the gateway is and who to call
//! it as ([`Conn`]: flags, else a profile, else a clear error), how the
//! answer is printed (text, or `--output json`: each answer message in the
//! proto3 JSON mapping, one document per line), and a citizen ID read from
//! standard input when given as `-`.
//!
//! Profiles live in `civex-profiles.toml` (or `--profiles FILE`,
//! `CIVEX_PROFILES`); `civex demo` writes one per demo agency and names,
//! under `[defaults]`, the profile each kind of command uses when none is
//! given:
//!
//! ```toml
//! [defaults]
//! requester = "qujing-psb"
//!
//! [profiles.qujing-psb]
//! endpoint = "https://127.0.0.1:50051"
//! ca = "certs/ca.pem"
//! cert = "certs/agencies/qujing-psb.pem"
//! key = "certs/agencies/qujing-psb.key"
//! ```
//!
//! Relative paths in a profile are relative to the file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::LazyLock,
};

use anyhow::Context;
use clap::{Args, ValueEnum};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use civex_gateway::error::reason_of;

use crate::client::{self, ClientTls};

/// The endpoint when neither a flag nor a profile names one.
const DEFAULT_ENDPOINT: &str = "https://127.0.0.1:50051";
/// The profiles file when none is named.
pub(crate) const PROFILES_FILE: &str = "civex-profiles.toml";

/// The role a command calls in, which picks the default profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Requester,
    ConsentRegistrar,
    Auditor,
    Admin,
    DataSteward,
}

impl Role {
    fn key(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::ConsentRegistrar => "consent_registrar",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::DataSteward => "data_steward",
        }
    }
}

/// How a command prints its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people.
    #[default]
    Text,
    /// The proto3 JSON mapping of each answer, one document per line.
    Json,
}

/// How to reach the gateway, who to call it as, and how to print the answer.
#[derive(Debug, Args, Default)]
pub(crate) struct Conn {
    /// The gateway, e.g. `https://127.0.0.1:50051` (default: the profile's).
    #[arg(long)]
    endpoint: Option<String>,
    /// The profile to call with (default: the one `[defaults]` names for the command's role).
    #[arg(long, env = "CIVEX_PROFILE")]
    profile: Option<String>,
    /// The profiles file.
    #[arg(long, env = "CIVEX_PROFILES", default_value = PROFILES_FILE)]
    profiles: PathBuf,
    /// Call as this agency with the dev PKI's files `<certs>/agencies/<agency>.pem|key`.
    #[arg(long = "as", value_name = "AGENCY", conflicts_with = "cert")]
    act_as: Option<String>,
    /// The dev PKI's directory, for `--as`.
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
    /// CA certificate (PEM) the gateway's certificate must chain to
    /// (default: the profile's, else `<certs>/ca.pem`).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM); with `--key`.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key (PEM); with `--cert`.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// `text` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) output: Format,
}

/// One profile: an endpoint and the PEM files to call it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) endpoint: String,
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// A profiles file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profiles {
    /// The profile each role's commands use when none is named.
    #[serde(default)]
    pub(crate) defaults: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, Profile>,
}

impl Profiles {
    /// The file at `path`; an empty set if there is none.
    fn load(path: &Path) -> anyhow::Result<Profiles> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not a profiles file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profiles::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file (the demo's profiles).
    pub(crate) fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!(
            "# Written by `civex demo`: one profile per demo agency. Use one with\n\
             # --profile NAME or CIVEX_PROFILE=NAME; [defaults] names the profile\n\
             # each kind of command uses when none is given.\n{}",
            toml::to_string(self)?
        );
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Conn {
    pub(crate) async fn channel(&self, role: Role) -> anyhow::Result<Channel> {
        let (endpoint, tls) = self.resolve(role)?;
        client::connect(&endpoint, &tls).await.map_err(|e| {
            let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            anyhow::anyhow!(
                "cannot connect to {endpoint} (give --endpoint, or a --profile of {}): {cause}",
                self.profiles.display()
            )
        })
    }

    /// A channel that connects on first use (and again after a failure).
    pub(crate) fn lazy_channel(&self, role: Role) -> anyhow::Result<Channel> {
        let (endpoint, tls) = self.resolve(role)?;
        Ok(client::endpoint_for(&endpoint, &tls)
            .with_context(|| format!("bad endpoint {endpoint}"))?
            .connect_lazy())
    }

    /// The endpoint and PEM material: `--cert`/`--key`, else `--as`, else
    /// the profile named or the role's default one.
    fn resolve(&self, role: Role) -> anyhow::Result<(String, ClientTls)> {
        let profiles = Profiles::load(&self.profiles)?;
        let base = self.profiles.parent().unwrap_or(Path::new("."));
        let named = match &self.profile {
            Some(name) => Some(profiles.profiles.get(name).with_context(|| {
                let known: Vec<&str> = profiles.profiles.keys().map(String::as_str).collect();
                format!(
                    "no profile {name:?} in {} (it has: {})",
                    self.profiles.display(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            })?),
            None => None,
        };
        let fallback = profiles
            .defaults
            .get(role.key())
            .and_then(|name| profiles.profiles.get(name));
        // Who: the profile named, else the role's default unless flags say who.
        let profile = named.or(fallback.filter(|_| self.cert.is_none() && self.act_as.is_none()));
        // Where: the flag, else the profile named, else the role's default.
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| named.or(fallback).map(|p| p.endpoint.clone()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let in_profile = |path: &Path| base.join(path);
        let (ca, cert, key) = match (&self.cert, &self.key, &self.act_as, profile) {
            (Some(cert), Some(key), _, _) => {
                let ca = named.map_or_else(|| self.certs.join("ca.pem"), |p| in_profile(&p.ca));
                (ca, cert.clone(), key.clone())
            }
            (_, _, Some(agency), _) => ClientTls::demo_paths(&self.certs, agency),
            (_, _, None, Some(p)) => (in_profile(&p.ca), in_profile(&p.cert), in_profile(&p.key)),
            _ => anyhow::bail!(
                "no identity to call the gateway as: give --profile NAME (civex demo writes {}), \
                 --as AGENCY (a dev PKI agency under --certs), or --cert FILE --key FILE",
                self.profiles.display()
            ),
        };
        let ca = self.ca.clone().unwrap_or(ca);
        Ok((endpoint, ClientTls::from_files(&ca, &cert, &key)?))
    }

    /// Prints `message`: its proto3 JSON, or `text` of it.
    pub(crate) fn show<M: prost::Message + prost::Name>(&self, message: &M, text: impl FnOnce(&M)) {
        match self.output {
            Format::Json => println!("{}", json(message)),
            Format::Text => text(message),
        }
    }
}

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(civex_proto::FILE_DESCRIPTOR_SET).unwrap_or_else(|e| {
        // The set is compiled into this binary from the same protos as the messages.
        panic!("the built-in descriptor set does not decode: {e}")
    })
});

/// `message` in the proto3 JSON mapping (lowerCamelCase names, enums by
/// name, 64-bit integers as strings, bytes in base64, RFC 3339 times),
/// every field present, at its default too, so each answer has one shape.
pub(crate) fn json<M: prost::Message + prost::Name>(message: &M) -> serde_json::Value {
    let Some(descriptor) = POOL.get_message_by_name(&M::full_name()) else {
        panic!("{} is not in the built-in descriptor set", M::full_name());
    };
    let mut dynamic = DynamicMessage::new(descriptor);
    if let Err(e) = dynamic.transcode_from(message) {
        panic!("{} does not transcode: {e}", M::full_name());
    }
    dynamic
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().skip_default_fields(false),
        )
        .unwrap_or_else(|e| panic!("{} does not serialize: {e}", M::full_name()))
}

/// A citizen ID as given, or read from one line of standard input when
/// given as `-`, so it stays out of the shell's history and `ps`.
pub(crate) fn read_citizen(given: String) -> anyhow::Result<String> {
    if given != "-" {
        return Ok(given);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the citizen ID from standard input")?;
    let id = line.trim().to_owned();
    anyhow::ensure!(!id.is_empty(), "standard input held no citizen ID");
    Ok(id)
}

/// Turns a status into an error that names the code and civex reason.
pub(crate) fn rpc_error(status: tonic::Status) -> anyhow::Error {
    let reason = reason_of(&status).unwrap_or_default();
    anyhow::anyhow!("{:?} {reason}: {}", status.code(), status.message())
}
