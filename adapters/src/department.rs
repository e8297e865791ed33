//! The departments that hold facts, by their short codes.

use std::{fmt, str::FromStr};

/// A government department that holds facts about citizens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Department {
    /// Public security (公安), keeper of household registration (户籍).
    PublicSecurity,
    /// Education (教育).
    Education,
    /// Human resources and social security (人力资源和社会保障).
    HumanResources,
    /// Civil affairs (民政), including minimum living allowance (低保).
    CivilAffairs,
    /// Housing and urban-rural development (住房和城乡建设).
    Housing,
    /// Land and resources (国土资源).
    Land,
    /// Taxation (税务).
    Tax,
}

/// The prefix of the SAN URI a department source's certificate carries:
/// `spiffe://civex/department/<code>`.
pub const SOURCE_URI_PREFIX: &str = "spiffe://civex/department/";

impl Department {
    /// The SAN URI of this department's source certificate.
    pub fn source_uri(self) -> String {
        format!("{SOURCE_URI_PREFIX}{}", self.code())
    }

    /// Every department, in catalogue order.
    pub const ALL: [Department; 7] = [
        Department::PublicSecurity,
        Department::Education,
        Department::HumanResources,
        Department::CivilAffairs,
        Department::Housing,
        Department::Land,
        Department::Tax,
    ];

    /// The short code used in attribute names, file names and configuration.
    pub const fn code(self) -> &'static str {
        match self {
            Department::PublicSecurity => "ps",
            Department::Education => "edu",
            Department::HumanResources => "hrss",
            Department::CivilAffairs => "ca",
            Department::Housing => "housing",
            Department::Land => "land",
            Department::Tax => "tax",
        }
    }
}

impl fmt::Display for Department {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A department code that names no department.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown department {0:?} (expected one of ps, edu, hrss, ca, housing, land, tax)")]
pub struct UnknownDepartment(pub String);

impl FromStr for Department {
    type Err = UnknownDepartment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Department::ALL
            .into_iter()
            .find(|d| d.code() == s)
            .ok_or_else(|| UnknownDepartment(s.to_owned()))
    }
}
