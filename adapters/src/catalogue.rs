//! The attribute catalogue: every fact the gateway can serve, who holds it,
//! its type, how it may be shared, and whether it is abolished.
//!
//! Sharing categories follow China's rules on sharing government data (the
//! 2016 interim measures and the State Council's 2025 Regulations on Sharing
//! Government Data, Decree 809): unconditional, conditional, not shared.

use std::fmt;

use crate::Department;

/// The type of an attribute's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Bool,
    Int,
    Text,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

impl ValueType {
    /// The name used on the wire (`AttributeInfo.value_type`).
    pub const fn name(self) -> &'static str {
        match self {
            ValueType::Bool => "bool",
            ValueType::Int => "int",
            ValueType::Text => "text",
            ValueType::Date => "date",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a fact may be shared between departments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// 无条件共享: any department may obtain it.
    Unconditional,
    /// 有条件共享: only for a stated purpose, with consent.
    Conditional,
    /// 不予共享: never shared.
    NotShared,
}

impl Sharing {
    /// The name used on the wire (`AttributeInfo.sharing`).
    pub const fn name(self) -> &'static str {
        match self {
            Sharing::Unconditional => "unconditional",
            Sharing::Conditional => "conditional",
            Sharing::NotShared => "not_shared",
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute {
    /// `<department>.<topic>.<fact>`.
    pub name: &'static str,
    pub department: Department,
    pub value_type: ValueType,
    pub description: &'static str,
    pub sharing: Sharing,
    pub sensitive: bool,
    /// Abolished attributes can never be asked for.
    pub abolished: bool,
}

const fn attr(
    name: &'static str,
    department: Department,
    value_type: ValueType,
    sharing: Sharing,
    sensitive: bool,
    description: &'static str,
) -> Attribute {
    Attribute {
        name,
        department,
        value_type,
        description,
        sharing,
        sensitive,
        abolished: false,
    }
}

use Department::*;
use Sharing::*;
use ValueType::*;

/// The name of the abolished household-type attribute (户口性质).
pub const HOUSEHOLD_NATURE: &str = "ps.hukou.nature";

/// The criminal-record flag (犯罪记录): read by a predicate, never served.
pub const CRIMINAL_RECORD: &str = "ps.criminal_record.convicted";
/// A household's assessed income and assets per person: read by the means test, never served.
pub const MEANS_INCOME: &str = "ca.means_test.income_per_person";
pub const MEANS_ASSETS: &str = "ca.means_test.assets_per_person";

impl Attribute {
    /// Whether the attribute may be served by `Query` or named as a consent
    /// scope: not the abolished household type, not one that is never shared.
    pub const fn served(&self) -> bool {
        !self.abolished && !matches!(self.sharing, Sharing::NotShared)
    }
}

/// Every attribute, grouped by department.
pub static ATTRIBUTES: &[Attribute] = &[
    attr(
        "ps.identity.birth_date",
        PublicSecurity,
        Date,
        Unconditional,
        false,
        "Date of birth as registered (出生日期)",
    ),
    attr(
        "ps.identity.gender",
        PublicSecurity,
        Text,
        Unconditional,
        false,
        "Gender as registered: male or female",
    ),
    attr(
        "ps.identity.deceased",
        PublicSecurity,
        Bool,
        Conditional,
        false,
        "Registered as deceased: the registration was cancelled for death (死亡注销); false for the living",
    ),
    attr(
        "ps.hukou.division",
        PublicSecurity,
        Text,
        Conditional,
        false,
        "Six-digit division code of the place of household registration (户籍所在地)",
    ),
    attr(
        "ps.hukou.category",
        PublicSecurity,
        Text,
        Unconditional,
        false,
        "Household category; always `resident` (居民户口) since 2016-01-01",
    ),
    attr(
        "ps.hukou.collective",
        PublicSecurity,
        Bool,
        Conditional,
        false,
        "Registered in a collective household (集体户) rather than a family household",
    ),
    attr(
        "ps.hukou.moved_in_on",
        PublicSecurity,
        Date,
        Conditional,
        false,
        "Date the registration moved to its current place (迁入日期); absent if registered there since birth",
    ),
    attr(
        "ps.hukou.moved_from",
        PublicSecurity,
        Text,
        Conditional,
        false,
        "Six-digit division code the registration moved from (迁出地); absent if registered there since birth",
    ),
    attr(
        "ps.hukou.cancelled",
        PublicSecurity,
        Bool,
        Conditional,
        false,
        "The registration is cancelled (户口注销: death, settling abroad, military service)",
    ),
    attr(
        "ps.hukou.cancelled_on",
        PublicSecurity,
        Date,
        Conditional,
        false,
        "Date the registration was cancelled; absent unless cancelled",
    ),
    Attribute {
        name: HOUSEHOLD_NATURE,
        department: PublicSecurity,
        value_type: Text,
        description: "Agricultural / non-agricultural household type (户口性质); abolished by clause 十 \
                      of 曲政发〔2015〕82号 from 2016-01-01: use the underlying facts or a predicate",
        sharing: NotShared,
        sensitive: false,
        abolished: true,
    },
    attr(
        "ps.residence_permit.held",
        PublicSecurity,
        Bool,
        Conditional,
        false,
        "Holds a valid residence permit (居住证)",
    ),
    attr(
        "ps.residence_permit.division",
        PublicSecurity,
        Text,
        Conditional,
        false,
        "Division code where the residence permit was issued",
    ),
    attr(
        "ps.residence_permit.issued_on",
        PublicSecurity,
        Date,
        Conditional,
        false,
        "Date the current residence permit was first issued",
    ),
    attr(
        "ps.residence.division",
        PublicSecurity,
        Text,
        Conditional,
        true,
        "Division code of the actual place of residence (居住地)",
    ),
    attr(
        "ps.residence.since",
        PublicSecurity,
        Date,
        Conditional,
        true,
        "Date since which the citizen has lived at the actual place of residence",
    ),
    attr(
        "ps.residence.address_key",
        PublicSecurity,
        Text,
        Conditional,
        true,
        "Opaque key of the actual residence address (居住地址编码): equal for people who live at the same \
         address and revealing nothing else; decides living together (共同居住)",
    ),
    attr(
        "ps.kin.father_id",
        PublicSecurity,
        Text,
        Conditional,
        true,
        "Citizen ID of the father (父亲) as recorded in household registration; absent if not recorded",
    ),
    attr(
        "ps.kin.mother_id",
        PublicSecurity,
        Text,
        Conditional,
        true,
        "Citizen ID of the mother (母亲) as recorded in household registration; absent if not recorded",
    ),
    attr(
        "ps.kin.spouse_id",
        PublicSecurity,
        Text,
        Conditional,
        true,
        "Citizen ID of the spouse (配偶) as recorded in household registration; absent if not recorded",
    ),
    attr(
        "ps.kin.children_ids",
        PublicSecurity,
        Text,
        Conditional,
        true,
        "Citizen IDs of the children (子女) as recorded in household registration, comma-separated",
    ),
    Attribute {
        name: CRIMINAL_RECORD,
        department: PublicSecurity,
        value_type: Bool,
        description: "Has a criminal conviction on record (犯罪记录). Never served on its own: only the \
                      predicate ps.no_criminal_record reads it (公通字〔2021〕19号)",
        sharing: NotShared,
        sensitive: true,
        abolished: false,
    },
    attr(
        "edu.enrolled",
        Education,
        Bool,
        Conditional,
        false,
        "Currently enrolled at a school",
    ),
    attr(
        "edu.school_division",
        Education,
        Text,
        Conditional,
        false,
        "Division code of the school attended",
    ),
    attr(
        "edu.schooling_since",
        Education,
        Date,
        Conditional,
        false,
        "Date since which schooling in that division has been continuous",
    ),
    attr(
        "edu.student_level",
        Education,
        Text,
        Conditional,
        false,
        "primary, junior_secondary, senior_secondary, vocational or higher",
    ),
    attr(
        "hrss.employment.registered",
        HumanResources,
        Bool,
        Conditional,
        false,
        "Has registered employment (就业登记) under a labour contract",
    ),
    attr(
        "hrss.employment.division",
        HumanResources,
        Text,
        Conditional,
        false,
        "Division code of the registered employment",
    ),
    attr(
        "hrss.pension.contribution_years",
        HumanResources,
        Int,
        Conditional,
        true,
        "Years of basic pension insurance contributions (养老保险缴费年限)",
    ),
    attr(
        "hrss.pension.continuous_months",
        HumanResources,
        Int,
        Conditional,
        true,
        "Months of basic pension insurance paid without a gap up to the last month (连续缴费月数)",
    ),
    attr(
        "hrss.medical.contribution_years",
        HumanResources,
        Int,
        Conditional,
        true,
        "Years of basic medical insurance contributions",
    ),
    attr(
        "hrss.unemployment.registered",
        HumanResources,
        Bool,
        Conditional,
        true,
        "Registered as unemployed (失业登记)",
    ),
    attr(
        "ca.marital_status",
        CivilAffairs,
        Text,
        Conditional,
        true,
        "single, married, divorced or widowed, as registered",
    ),
    attr(
        "ca.dibao.receiving",
        CivilAffairs,
        Bool,
        Conditional,
        true,
        "Receives the minimum living allowance (低保)",
    ),
    attr(
        "ca.assistance.receiving",
        CivilAffairs,
        Bool,
        Conditional,
        true,
        "Receives other social assistance (特困供养、临时救助)",
    ),
    Attribute {
        name: MEANS_INCOME,
        department: CivilAffairs,
        value_type: Int,
        description: "Monthly household income per person in yuan, as the means-test centre assessed it \
                      (居民家庭经济状况核对, 家庭人均月收入). Never served on its own: only the predicate \
                      ca.means_test reads it",
        sharing: NotShared,
        sensitive: true,
        abolished: false,
    },
    Attribute {
        name: MEANS_ASSETS,
        department: CivilAffairs,
        value_type: Int,
        description: "Household financial assets per person in yuan, as the means-test centre assessed it \
                      (家庭人均金融资产). Never served on its own: only the predicate ca.means_test reads it",
        sharing: NotShared,
        sensitive: true,
        abolished: false,
    },
    attr(
        "housing.owned_residence.division",
        Housing,
        Text,
        Conditional,
        true,
        "Division code of a legally owned residence (合法稳定住所, 自有)",
    ),
    attr(
        "housing.owned_residence.count",
        Housing,
        Int,
        Conditional,
        true,
        "Number of dwellings the real-estate register records in the citizen's name (名下住房套数), 0 for none",
    ),
    attr(
        "housing.registered_lease.division",
        Housing,
        Text,
        Conditional,
        true,
        "Division code of a registered residential lease (租赁登记备案)",
    ),
    attr(
        "housing.guarantee.receiving",
        Housing,
        Bool,
        Conditional,
        true,
        "Receives housing guarantee: public rental housing or rent subsidy",
    ),
    attr(
        "land.contract_rights.held",
        Land,
        Bool,
        Conditional,
        true,
        "Household holds rural land contract rights (土地承包经营权)",
    ),
    attr(
        "land.homestead_rights.held",
        Land,
        Bool,
        Conditional,
        true,
        "Household holds homestead use rights (宅基地使用权)",
    ),
    attr(
        "land.rights.division",
        Land,
        Text,
        Conditional,
        true,
        "Division code where the land or homestead rights lie",
    ),
    attr(
        "land.rights.certified",
        Land,
        Bool,
        Conditional,
        false,
        "The rights have been confirmed and certificated (确权登记颁证)",
    ),
    attr(
        "tax.registered",
        Tax,
        Bool,
        Conditional,
        false,
        "Registered with the tax authority",
    ),
    attr(
        "tax.iit.months_paid_last_12",
        Tax,
        Int,
        Conditional,
        true,
        "Months with individual income tax paid in the last twelve",
    ),
];

/// The abolished attribute that `name` spells in another case or with
/// surrounding blanks (`PS.HUKOU.NATURE`): recognised, so that it is refused
/// as abolished and logged under its own name, never taken as merely unknown.
pub fn abolished_like(name: &str) -> Option<&'static Attribute> {
    let name = name.trim();
    ATTRIBUTES
        .iter()
        .find(|a| a.abolished && a.name.eq_ignore_ascii_case(name))
}

/// Looks an attribute up by name.
pub fn attribute(name: &str) -> Option<&'static Attribute> {
    static BY_NAME: std::sync::LazyLock<std::collections::HashMap<&str, &Attribute>> =
        std::sync::LazyLock::new(|| ATTRIBUTES.iter().map(|a| (a.name, a)).collect());
    BY_NAME.get(name).copied()
}

/// The attributes a department holds and serves (abolished ones excluded).
pub fn held_by(department: Department) -> impl Iterator<Item = &'static Attribute> {
    ATTRIBUTES
        .iter()
        .filter(move |a| a.department == department && !a.abolished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed_by_their_department() {
        for (i, a) in ATTRIBUTES.iter().enumerate() {
            assert!(
                a.name.starts_with(&format!("{}.", a.department.code())),
                "{} is not under {}",
                a.name,
                a.department
            );
            assert!(
                ATTRIBUTES[i + 1..].iter().all(|b| b.name != a.name),
                "{} is listed twice",
                a.name
            );
        }
    }

    #[test]
    fn only_household_nature_is_abolished() {
        let abolished: Vec<_> = ATTRIBUTES.iter().filter(|a| a.abolished).map(|a| a.name).collect();
        assert_eq!(abolished, [HOUSEHOLD_NATURE]);
        assert!(held_by(PublicSecurity).all(|a| a.name != HOUSEHOLD_NATURE));
    }

    #[test]
    fn household_relations_and_the_address_key_are_sensitive_ids() {
        for name in [
            "ps.kin.father_id",
            "ps.kin.mother_id",
            "ps.kin.spouse_id",
            "ps.kin.children_ids",
            "ps.residence.address_key",
        ] {
            let a = attribute(name).unwrap_or_else(|| panic!("{name} is missing"));
            assert_eq!(
                (a.department, a.value_type, a.sharing),
                (PublicSecurity, Text, Conditional),
                "{name}"
            );
            assert!(a.sensitive, "{name}");
        }
    }

    #[test]
    fn nothing_re_creates_the_household_type() {
        // Rural or urban registration, alone, is the abolished 户口性质 by another name.
        for a in ATTRIBUTES.iter().filter(|a| !a.abolished) {
            let name = a.name.to_ascii_lowercase();
            assert!(
                !name.contains("rural") && !name.contains("urban") && !name.contains("nature"),
                "{} says whether a hukou is rural or urban",
                a.name
            );
        }
        for spelling in ["PS.HUKOU.NATURE", " ps.hukou.Nature ", HOUSEHOLD_NATURE] {
            assert_eq!(abolished_like(spelling).map(|a| a.name), Some(HOUSEHOLD_NATURE));
        }
        assert!(abolished_like("ps.hukou.division").is_none());
    }
}
