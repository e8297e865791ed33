//! Who may ask for what: roles, access rights (scope × purposes), and the
//! agencies that hold them.

use std::fmt;

use civex_adapters::{Attribute, Department, catalogue};
use serde::{Deserialize, Serialize};

use super::{predicates, purposes::purpose, scope_rule};
use crate::error::{Error, Reason};

/// What an agency may do; one agency may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Calls `ExchangeService`.
    Requester,
    /// Registers citizens' consents (`ConsentService`, `AuditService.AccessHistory`).
    ConsentRegistrar,
    /// Reads and verifies the audit log (`AuditService`).
    Auditor,
    /// Onboards and administers agencies (`AdminService`).
    Admin,
    /// Resolves objections to its own department's facts (`CorrectionService`, 校核纠错).
    DataSteward,
}

impl Role {
    /// Every role: what any agency of the deployment may call.
    pub const ALL: [Role; 5] = [
        Role::Requester,
        Role::ConsentRegistrar,
        Role::Auditor,
        Role::Admin,
        Role::DataSteward,
    ];
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Requester => "requester",
            Role::ConsentRegistrar => "consent_registrar",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::DataSteward => "data_steward",
        })
    }
}

/// A right to ask for `scope` for any of `purposes`. A scope is an attribute
/// name, or a prefix ending in `.*` (`tax.*`, `ps.residence.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRight {
    pub scope: String,
    pub purposes: Vec<String>,
}

impl AccessRight {
    fn covers(&self, name: &str, purpose: &str) -> bool {
        scope_matches(&self.scope, name) && self.purposes.iter().any(|p| p == purpose)
    }
}

fn scope_matches(scope: &str, name: &str) -> bool {
    match scope.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => scope == name,
    }
}

/// Resolves asked attribute names against the catalogue: unknown names get
/// `UNKNOWN_ATTRIBUTE`, the abolished household type `ATTRIBUTE_ABOLISHED`,
/// an attribute that is never shared (the criminal record) `NO_ACCESS_RIGHT`.
pub fn attributes(names: &[String], max: usize) -> Result<Vec<&'static Attribute>, Error> {
    if names.is_empty() {
        return Err(Error::new(Reason::InvalidRequest, "no attributes asked"));
    }
    if names.len() > max {
        return Err(Error::new(
            Reason::InvalidRequest,
            format!("{} attributes asked, at most {max} per request", names.len()),
        ));
    }
    let mut resolved: Vec<&'static Attribute> = Vec::with_capacity(names.len());
    for name in names {
        let attribute = catalogue::attribute(name)
            .or_else(|| catalogue::abolished_like(name))
            .ok_or_else(|| {
                let shown = super::labels::logged_label(name);
                Error::new(Reason::UnknownAttribute, format!("unknown attribute {shown:?}"))
            })?;
        if attribute.abolished {
            return Err(abolished(attribute.name));
        }
        if !attribute.served() {
            return Err(never_served(attribute.name));
        }
        if resolved.iter().any(|a| a.name == attribute.name) {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("attribute {name} asked twice"),
            ));
        }
        resolved.push(attribute);
    }
    Ok(resolved)
}

/// Resolves consent scopes: each an attribute (checked as [`attributes`]
/// does) or a predicate name. Returns the names, validated.
pub fn scopes(names: &[String], max: usize) -> Result<Vec<&'static str>, Error> {
    let (predicates, attributes): (Vec<&String>, Vec<&String>) =
        names.iter().partition(|n| predicates::predicate(n).is_ok());
    let attributes: Vec<String> = attributes.into_iter().cloned().collect();
    let mut resolved: Vec<&'static str> = if attributes.is_empty() && !predicates.is_empty() {
        Vec::new()
    } else {
        self::attributes(&attributes, max)?
            .into_iter()
            .map(|a| a.name)
            .collect()
    };
    for name in predicates {
        // Invariant: partitioned on `predicate(n).is_ok()` just above.
        let p = predicates::predicate(name)?;
        if resolved.contains(&p.name) {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("scope {} named twice", p.name),
            ));
        }
        resolved.push(p.name);
    }
    if resolved.len() > max {
        return Err(Error::new(Reason::InvalidRequest, format!("at most {max} scopes")));
    }
    Ok(resolved)
}

/// No agency holds a right to a fact that is never shared: only the predicate over it reads it.
fn never_served(name: &str) -> Error {
    let answered_by = predicates::PREDICATES
        .iter()
        .filter(|p| p.unserved.contains(&name))
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ");
    Error::new(
        Reason::NoAccessRight,
        format!("{name} is never served on its own (不予共享): ask the predicate {answered_by}"),
    )
}

fn abolished(name: &str) -> Error {
    Error::new(
        Reason::AttributeAbolished,
        format!(
            "{name} (户口性质, agricultural / non-agricultural household type) was abolished on \
             2016-01-01 by clause 十 of 曲政发〔2015〕82号: departments may not ask for it; ask for \
             the underlying facts (ps.hukou.division, ps.residence.*, land.*, housing.*, hrss.*) or, \
             once available, the predicates settlement.urban, settlement.return_rural, \
             residence_permit.apply"
        ),
    )
}

/// The catalogue's own spelling of a scope civex knows: an attribute (the
/// abolished one in any case), a predicate, or a `prefix.*` that covers one.
pub fn known_scope(scope: &str) -> Option<String> {
    if let Some(prefix) = scope.strip_suffix('*') {
        // A prefix covering only facts that are never served covers nothing.
        let covers = prefix.ends_with('.')
            && (catalogue::ATTRIBUTES
                .iter()
                .any(|a| a.served() && a.name.starts_with(prefix))
                || predicates::PREDICATES.iter().any(|p| p.name.starts_with(prefix)));
        return covers.then(|| scope.to_owned());
    }
    catalogue::attribute(scope)
        .or_else(|| catalogue::abolished_like(scope))
        .map(|a| a.name)
        .or_else(|| predicates::predicate(scope).ok().map(|p| p.name))
        .map(str::to_owned)
}

/// Checks a right as configured or granted: a known scope, known purposes,
/// never the abolished attribute, never land for settlement.
pub fn validate_right(right: &AccessRight) -> Result<(), Error> {
    let scope = right.scope.as_str();
    if known_scope(scope).is_none() {
        let shown = super::labels::logged_label(scope);
        return Err(Error::new(Reason::UnknownAttribute, format!("unknown scope {shown:?}")));
    }
    if let Some(a) = catalogue::abolished_like(scope) {
        return Err(abolished(a.name));
    }
    if let Some(a) = catalogue::attribute(scope).filter(|a| !a.served()) {
        return Err(never_served(a.name));
    }
    if right.purposes.is_empty() {
        return Err(Error::new(
            Reason::InvalidRequest,
            format!("right for {scope} names no purpose"),
        ));
    }
    for p in &right.purposes {
        purpose(p)?;
        scope_rule(scope, p)?;
    }
    Ok(())
}

/// Whether `code` is a well-formed agency code: 1-64 of `a-z`, `0-9` and
/// `-`, which is also safe as a file name and a URI path segment.
pub fn is_agency_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `code` names a department, or is `other`.
pub fn is_department_code(code: &str) -> bool {
    code == "other" || code.parse::<Department>().is_ok()
}

/// Whether an agency may currently act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Suspended,
}

/// Calls per second an agency may make and the burst above that; 0 means
/// the gateway's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// An agency as the gateway knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agency {
    pub code: String,
    pub name: String,
    pub department: String,
    pub roles: Vec<Role>,
    pub rights: Vec<AccessRight>,
    #[serde(default)]
    pub rate: RateLimit,
    pub status: Status,
}

impl Agency {
    /// Refuses with `NO_ACCESS_RIGHT` unless a right covers every scope for `purpose`.
    pub fn check_rights<'a>(&self, scopes: impl IntoIterator<Item = &'a str>, purpose: &str) -> Result<(), Error> {
        for scope in scopes {
            scope_rule(scope, purpose)?;
            if !self.rights.iter().any(|r| r.covers(scope, purpose)) {
                return Err(Error::new(
                    Reason::NoAccessRight,
                    format!("agency {} has no right to {scope} for {purpose}", self.code),
                ));
            }
        }
        Ok(())
    }

    /// Checks everything about an agency that an administrator may set.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |m: String| Err(Error::new(Reason::InvalidRequest, m));
        if super::labels::holds_citizen_id(&self.code) {
            return Err(Error::new(
                Reason::LabelHoldsCitizenId,
                "an agency code never holds an ID number",
            ));
        }
        if !is_agency_code(&self.code) {
            return invalid(format!("agency code {:?} must be 1-64 of a-z, 0-9 and '-'", self.code));
        }
        if self.name.trim().is_empty() || self.name.len() > 256 || self.name.chars().any(char::is_control) {
            return invalid("agency name must be 1-256 bytes of printable text".into());
        }
        if !is_department_code(&self.department) {
            return invalid(format!("unknown department {:?}", self.department));
        }
        if self.roles.is_empty() {
            return invalid("an agency needs at least one role".into());
        }
        if self.roles.contains(&Role::Requester) && self.roles.contains(&Role::ConsentRegistrar) {
            // A registrar that could ask would grant itself what it wants to read.
            return invalid("no agency may hold both requester and consent_registrar".into());
        }
        if self.rights.len() > 256 {
            return invalid("at most 256 access rights per agency".into());
        }
        for right in &self.rights {
            validate_right(right)?;
        }
        let RateLimit { per_second, burst } = self.rate;
        if per_second > 100_000 || burst > 100_000 || (per_second == 0 && burst != 0) {
            return invalid("rate: per_second and burst at most 100000, and a burst needs a rate".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::purposes::SETTLEMENT;

    fn agency(rights: &[(&str, &[&str])]) -> Agency {
        Agency {
            code: "t".into(),
            name: "t".into(),
            department: "tax".into(),
            roles: vec![Role::Requester],
            rights: rights
                .iter()
                .map(|(s, p)| AccessRight {
                    scope: (*s).into(),
                    purposes: p.iter().map(|x| (*x).into()).collect(),
                })
                .collect(),
            rate: RateLimit::default(),
            status: Status::Active,
        }
    }

    #[test]
    fn rights_table() {
        let a = agency(&[
            ("tax.*", &["tax.admin"]),
            ("ps.hukou.division", &["tax.admin"]),
            ("land.*", &["land.rights"]),
        ]);
        // (scopes, purpose, allowed)
        let cases: &[(&[&str], &str, bool)] = &[
            (&["tax.registered"], "tax.admin", true),
            (&["tax.registered", "tax.iit.months_paid_last_12"], "tax.admin", true),
            (&["tax.registered"], "land.rights", false),
            (&["ps.hukou.division"], "tax.admin", true),
            (&["ps.hukou.collective"], "tax.admin", false),
            (&["tax.registered", "ca.marital_status"], "tax.admin", false),
            (&["land.contract_rights.held"], "land.rights", true),
            (&["land.contract_rights.held"], SETTLEMENT, false),
        ];
        for (scopes, purpose, allowed) in cases {
            assert_eq!(
                a.check_rights(scopes.iter().copied(), purpose).is_ok(),
                *allowed,
                "{scopes:?} for {purpose}"
            );
        }
    }

    #[test]
    fn validate_right_table() {
        let cases: &[(&str, &[&str], Option<Reason>)] = &[
            ("tax.*", &["tax.admin"], None),
            ("ps.residence.*", &["hukou.settlement"], None),
            ("tax.nothing", &["tax.admin"], Some(Reason::UnknownAttribute)),
            ("ta*", &["tax.admin"], Some(Reason::UnknownAttribute)),
            ("tax.*", &["tax.evasion"], Some(Reason::UnknownPurpose)),
            ("tax.*", &[], Some(Reason::InvalidRequest)),
            (
                "ps.hukou.nature",
                &["hukou.settlement"],
                Some(Reason::AttributeAbolished),
            ),
            ("land.*", &["hukou.settlement"], Some(Reason::NoAccessRight)),
            ("land.*", &["hukou.return_rural"], None),
        ];
        for (scope, purposes, expected) in cases {
            let right = AccessRight {
                scope: (*scope).into(),
                purposes: purposes.iter().map(|p| (*p).into()).collect(),
            };
            assert_eq!(
                validate_right(&right).err().map(|e| e.reason),
                *expected,
                "{scope} {purposes:?}"
            );
        }
    }

    #[test]
    fn attributes_are_resolved_or_refused_with_the_right_reason() {
        let ok = attributes(&["tax.registered".into(), "ps.identity.gender".into()], 8).unwrap();
        assert_eq!(ok.len(), 2);
        let reason = |names: &[&str]| {
            attributes(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(), 2)
                .unwrap_err()
                .reason
        };
        assert_eq!(reason(&[]), Reason::InvalidRequest);
        assert_eq!(reason(&["tax.nope"]), Reason::UnknownAttribute);
        assert_eq!(reason(&["ps.hukou.nature"]), Reason::AttributeAbolished);
        assert_eq!(reason(&["tax.registered", "tax.registered"]), Reason::InvalidRequest);
        assert_eq!(reason(&["a", "b", "c"]), Reason::InvalidRequest);
        let long_and_wide = "户".repeat(60);
        assert_eq!(reason(&[long_and_wide.as_str()]), Reason::UnknownAttribute);
        let message = attributes(&["ps.hukou.nature".into()], 2).unwrap_err().message;
        assert!(
            message.contains("十") && message.contains("settlement.urban"),
            "{message}"
        );
    }
}
