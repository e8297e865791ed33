//! The purpose registry: every purpose a consent or an access right may
//! name, with the clause that makes it legitimate.

use crate::error::{Error, Reason};

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

/// The purpose of hiring for a post a law closes to people with criminal
/// convictions: the only use of `ps.no_criminal_record`.
pub const RESTRICTED_POST: &str = "employment.restricted_post";

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
        code: RESTRICTED_POST,
        description: "Hiring for a post a law closes to people with criminal convictions (teachers, \
                      security guards, drivers of passenger transport…)",
        basis: "公通字〔2021〕19号；《中华人民共和国教师法》第十四条",
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
    PURPOSES.iter().find(|p| p.code == code).ok_or_else(|| {
        let shown = super::labels::logged_label(code);
        Error::new(Reason::UnknownPurpose, format!("unknown purpose {shown:?}"))
    })
}
