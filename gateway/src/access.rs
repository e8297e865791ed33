//! Who may ask for what: roles, access rights (scope × purposes), the
//! purpose registry, and the directory of agencies.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use civex_adapters::{Attribute, Department, catalogue};
use serde::{Deserialize, Serialize};

use crate::{
    config::AgencyConfig,
    error::{Error, Reason},
    predicates,
};

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
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Requester => "requester",
            Role::ConsentRegistrar => "consent_registrar",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
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

/// A registered purpose of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose {
    pub code: &'static str,
    pub description: &'static str,
    /// The document and clause that make this use legitimate.
    pub basis: &'static str,
}

/// The purpose of settling in a town or city (落户城镇).
pub const SETTLEMENT: &str = "hukou.settlement";

/// Every purpose a consent or right may name.
pub static PURPOSES: &[Purpose] = &[
    Purpose {
        code: SETTLEMENT,
        description: "Settling household registration in a town or city (落户城镇)",
        basis: "曲政发〔2015〕82号（四）（五）（六）",
    },
    Purpose {
        code: "hukou.return_rural",
        description: "Moving household registration back to the rural place of origin (回原籍农村落户)",
        basis: "曲政发〔2015〕82号（八）",
    },
    Purpose {
        code: "residence_permit.issue",
        description: "Issuing a residence permit (居住证)",
        basis: "曲政发〔2015〕82号（十二）",
    },
    Purpose {
        code: "education.enrollment",
        description: "School enrolment and exam eligibility of children who moved with their parents (随迁子女)",
        basis: "曲政发〔2015〕82号（十二）",
    },
    Purpose {
        code: "social_insurance.transfer",
        description: "Transferring and continuing social insurance",
        basis: "曲政发〔2015〕82号（十二）（十三）",
    },
    Purpose {
        code: "housing.guarantee",
        description: "Housing guarantee: public rental housing and rent subsidies",
        basis: "曲政发〔2015〕82号（十二）（十三）",
    },
    Purpose {
        code: "social_assistance.review",
        description: "Reviewing minimum living allowance (低保) and other social assistance",
        basis: "曲政发〔2015〕82号（十三）",
    },
    Purpose {
        code: "land.rights",
        description: "Administering land contract (土地承包经营权) and homestead (宅基地) rights",
        basis: "曲政发〔2015〕82号（十五）",
    },
    Purpose {
        code: "tax.admin",
        description: "Tax administration",
        basis: "曲政发〔2015〕82号（十三）",
    },
];

/// Looks a purpose up, refusing unknown codes with `UNKNOWN_PURPOSE`.
pub fn purpose(code: &str) -> Result<&'static Purpose, Error> {
    if code.is_empty() {
        return Err(Error::new(Reason::UnknownPurpose, "purpose is required"));
    }
    PURPOSES
        .iter()
        .find(|p| p.code == code)
        .ok_or_else(|| Error::new(Reason::UnknownPurpose, format!("unknown purpose {code:?}")))
}

/// Resolves asked attribute names against the catalogue: unknown names get
/// `UNKNOWN_ATTRIBUTE`, the abolished household type `ATTRIBUTE_ABOLISHED`.
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
        let attribute = catalogue::attribute(name).ok_or_else(|| {
            // Characters, not bytes: a byte cut could split a character.
            let shown: String = name.chars().take(80).collect();
            Error::new(Reason::UnknownAttribute, format!("unknown attribute {shown:?}"))
        })?;
        if attribute.abolished {
            return Err(abolished(attribute.name));
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

/// Whether a scope (attribute, predicate or prefix) reaches land facts.
fn is_land(scope: &str) -> bool {
    if scope == "*" || scope.starts_with("land.") {
        return true;
    }
    match scope.strip_suffix('*') {
        Some(prefix) => predicates::PREDICATES
            .iter()
            .any(|p| p.land_based && p.name.starts_with(prefix)),
        None => predicates::predicate(scope).is_ok_and(|p| p.land_based),
    }
}

/// Clause 十五: giving up land rights must not be a condition of settling in
/// a town, so land facts and land-based predicates are never used for
/// purpose `hukou.settlement`.
pub fn land_rule(scope: &str, purpose: &str) -> Result<(), Error> {
    let is_land = is_land(scope);
    if is_land && purpose == SETTLEMENT {
        return Err(Error::new(
            Reason::NoAccessRight,
            format!(
                "{scope} may not be used for {SETTLEMENT}: clause 十五 of 曲政发〔2015〕82号 forbids \
                 making land contract or homestead rights a condition of settling in a town"
            ),
        ));
    }
    Ok(())
}

/// Checks a right as configured or granted: a known scope, known purposes,
/// never the abolished attribute, never land for settlement.
pub fn validate_right(right: &AccessRight) -> Result<(), Error> {
    let scope = right.scope.as_str();
    let known = match scope.strip_suffix('*') {
        Some(prefix) => {
            prefix.ends_with('.')
                && (catalogue::ATTRIBUTES.iter().any(|a| a.name.starts_with(prefix))
                    || predicates::PREDICATES.iter().any(|p| p.name.starts_with(prefix)))
        }
        None => catalogue::attribute(scope).is_some() || predicates::predicate(scope).is_ok(),
    };
    if !known {
        return Err(Error::new(Reason::UnknownAttribute, format!("unknown scope {scope:?}")));
    }
    if catalogue::attribute(scope).is_some_and(|a| a.abolished) {
        return Err(abolished(scope));
    }
    if right.purposes.is_empty() {
        return Err(Error::new(
            Reason::InvalidRequest,
            format!("right for {scope} names no purpose"),
        ));
    }
    for p in &right.purposes {
        purpose(p)?;
        land_rule(scope, p)?;
    }
    Ok(())
}

/// Whether `code` is a well-formed agency code.
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
            land_rule(scope, purpose)?;
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

impl From<&AgencyConfig> for Agency {
    fn from(c: &AgencyConfig) -> Agency {
        Agency {
            code: c.code.clone(),
            name: c.name.clone(),
            department: c.department.clone(),
            roles: c.roles.clone(),
            rights: c.rights.clone(),
            rate: c.rate,
            status: Status::Active,
        }
    }
}

/// The agencies the gateway serves: persisted in sled, cached in memory,
/// looked up on every call, so a change takes effect on the next call.
#[derive(Debug)]
pub struct Directory {
    tree: sled::Tree,
    agencies: RwLock<HashMap<String, Arc<Agency>>>,
}

fn stored(e: impl fmt::Display) -> Error {
    Error::internal(format!("agency store: {e}"))
}

impl Directory {
    /// Opens the agency store of `db`; at first start (an empty store) it is
    /// seeded with `seed`, and from then on the store is the source of truth.
    pub fn open(db: &sled::Db, seed: impl IntoIterator<Item = Agency>) -> Result<Directory, Error> {
        let tree = db.open_tree("agencies").map_err(stored)?;
        if tree.is_empty() {
            for agency in seed {
                tree.insert(agency.code.as_bytes(), serde_json::to_vec(&agency).map_err(stored)?)
                    .map_err(stored)?;
            }
            tree.flush().map_err(stored)?;
        }
        let mut agencies = HashMap::new();
        for item in tree.iter() {
            let (_, v) = item.map_err(stored)?;
            let agency: Agency = serde_json::from_slice(&v).map_err(stored)?;
            agencies.insert(agency.code.clone(), Arc::new(agency));
        }
        Ok(Directory {
            tree,
            agencies: RwLock::new(agencies),
        })
    }

    /// The agency with `code`, if registered.
    pub fn agency(&self, code: &str) -> Option<Arc<Agency>> {
        self.agencies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(code)
            .cloned()
    }

    /// Every agency, by code.
    pub fn list(&self) -> Vec<Arc<Agency>> {
        let mut all: Vec<_> = self
            .agencies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        all
    }

    /// Changes (or, with `create`, registers) an agency: validated, written
    /// through to the store and flushed before it takes effect.
    pub fn update(
        &self,
        code: &str,
        create: impl FnOnce() -> Option<Agency>,
        change: impl FnOnce(&mut Agency) -> Result<(), Error>,
    ) -> Result<Arc<Agency>, Error> {
        let mut agencies = self.agencies.write().unwrap_or_else(|p| p.into_inner());
        let mut agency = match agencies.get(code) {
            Some(a) => Agency::clone(a),
            None => create().ok_or_else(|| Error::new(Reason::InvalidRequest, format!("no agency {code:?}")))?,
        };
        change(&mut agency)?;
        agency.validate()?;
        self.tree
            .insert(agency.code.as_bytes(), serde_json::to_vec(&agency).map_err(stored)?)
            .map_err(stored)?;
        self.tree.flush().map_err(stored)?;
        let agency = Arc::new(agency);
        agencies.insert(agency.code.clone(), agency.clone());
        Ok(agency)
    }

    /// The calling agency, if it is registered, active and holds one of `roles`.
    pub fn authorize(&self, code: &str, roles: &[Role]) -> Result<Arc<Agency>, Error> {
        let agency = self.agency(code).ok_or_else(|| {
            Error::new(
                Reason::RoleRequired,
                format!("agency {code} is not registered with this gateway"),
            )
        })?;
        if agency.status == Status::Suspended {
            return Err(Error::new(
                Reason::AgencySuspended,
                format!("agency {code} is suspended"),
            ));
        }
        if !roles.iter().any(|r| agency.roles.contains(r)) {
            let names: Vec<String> = roles.iter().map(Role::to_string).collect();
            return Err(Error::new(
                Reason::RoleRequired,
                format!(
                    "this call needs role {}; agency {code} does not hold it",
                    names.join(" or ")
                ),
            ));
        }
        Ok(agency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
