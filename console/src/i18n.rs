//! Every text of the console, in Chinese (the default) and English. One
//! struct holds them, so a text missing in either language does not compile.

use civex_proto::v1::{AlertState, CaseState, Disposition, Severity};

use crate::session::UserError;

/// A page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub(crate) const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    /// `zh` or `en`, as `?lang=` takes it.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The `lang=` parameter of a query string, if it names a language.
    pub(crate) fn from_query(query: &str) -> Option<Lang> {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::from_code(&v))
    }

    /// The `lang` attribute of the page.
    pub(crate) fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language's name in itself.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::En => "English",
        }
    }

    pub(crate) fn text(self) -> &'static Text {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

/// The texts of one language.
pub(crate) struct Text {
    lang: Lang,
    pub(crate) brand: &'static str,
    pub(crate) skip_to_content: &'static str,
    pub(crate) nav_label: &'static str,
    pub(crate) nav_overview: &'static str,
    pub(crate) nav_search: &'static str,
    pub(crate) nav_history: &'static str,
    pub(crate) nav_alerts: &'static str,
    pub(crate) nav_cases: &'static str,
    pub(crate) nav_checkpoints: &'static str,
    pub(crate) language: &'static str,
    pub(crate) signed_in_as: &'static str,
    pub(crate) log_out: &'static str,
    pub(crate) logged_out: &'static str,

    pub(crate) login_title: &'static str,
    pub(crate) login_intro: &'static str,
    pub(crate) login_needed: &'static str,
    pub(crate) login_used: &'static str,
    pub(crate) user_name: &'static str,
    pub(crate) user_help: &'static str,
    pub(crate) log_in: &'static str,

    pub(crate) error_title: &'static str,
    pub(crate) gateway_refused: &'static str,
    pub(crate) reason: &'static str,
    pub(crate) message: &'static str,
    pub(crate) grpc_status: &'static str,
    pub(crate) bad_input: &'static str,
    pub(crate) csrf_refused: &'static str,
    pub(crate) not_found: &'static str,
    pub(crate) bad_time: &'static str,
    pub(crate) bad_decision: &'static str,
    pub(crate) bad_page_size: &'static str,
    pub(crate) bad_index: &'static str,
    pub(crate) bad_state: &'static str,
    pub(crate) bad_disposition: &'static str,
    pub(crate) bad_op: &'static str,

    pub(crate) overview_title: &'static str,
    pub(crate) log_heading: &'static str,
    pub(crate) tree_size: &'static str,
    pub(crate) root_hash: &'static str,
    pub(crate) signature: &'static str,
    pub(crate) consistent_with_previous: &'static str,
    pub(crate) all_checkpoints: &'static str,
    pub(crate) no_checkpoints: &'static str,
    pub(crate) day_heading: &'static str,
    pub(crate) chart_title: &'static str,
    pub(crate) per_hour: &'static str,
    pub(crate) per_agency: &'static str,
    pub(crate) hour: &'static str,
    pub(crate) calls: &'static str,
    pub(crate) refusals: &'static str,
    pub(crate) hatched: &'static str,
    pub(crate) total: &'static str,
    pub(crate) open_alerts: &'static str,
    pub(crate) no_open_alerts: &'static str,
    pub(crate) all_open_alerts: &'static str,

    pub(crate) search_title: &'static str,
    pub(crate) search_help: &'static str,
    pub(crate) filters: &'static str,
    pub(crate) citizen_id: &'static str,
    pub(crate) citizen_id_help: &'static str,
    pub(crate) citizen_ref: &'static str,
    pub(crate) agency: &'static str,
    pub(crate) operator: &'static str,
    pub(crate) action: &'static str,
    pub(crate) decision: &'static str,
    pub(crate) any: &'static str,
    pub(crate) allowed: &'static str,
    pub(crate) denied: &'static str,
    pub(crate) since: &'static str,
    pub(crate) until: &'static str,
    pub(crate) request_id: &'static str,
    pub(crate) consent_id: &'static str,
    pub(crate) page_size: &'static str,
    pub(crate) search: &'static str,
    pub(crate) clear: &'static str,
    pub(crate) results: &'static str,
    pub(crate) no_results: &'static str,
    pub(crate) next_page: &'static str,
    pub(crate) no_more: &'static str,
    pub(crate) index: &'static str,
    pub(crate) time: &'static str,
    pub(crate) purpose: &'static str,

    pub(crate) entry_title: &'static str,
    pub(crate) certificate: &'static str,
    pub(crate) scopes: &'static str,
    pub(crate) related: &'static str,
    pub(crate) subject: &'static str,
    pub(crate) note: &'static str,
    pub(crate) consent: &'static str,
    pub(crate) no_consent: &'static str,
    pub(crate) consent_uses: &'static str,
    pub(crate) granted: &'static str,
    pub(crate) granted_for: &'static str,
    pub(crate) by: &'static str,
    pub(crate) inclusion: &'static str,
    pub(crate) undecodable: &'static str,
    pub(crate) verified: &'static str,
    pub(crate) failed: &'static str,

    pub(crate) history_title: &'static str,
    pub(crate) history_help: &'static str,
    pub(crate) show_history: &'static str,
    pub(crate) history_heading: &'static str,
    pub(crate) printed_at: &'static str,
    pub(crate) printed_by: &'static str,
    pub(crate) history_empty: &'static str,
    pub(crate) history_footer: &'static str,
    pub(crate) who: &'static str,
    pub(crate) what: &'static str,
    pub(crate) print: &'static str,

    pub(crate) alerts_title: &'static str,
    pub(crate) alert_title: &'static str,
    pub(crate) alerts: &'static str,
    pub(crate) state: &'static str,
    pub(crate) state_open: &'static str,
    pub(crate) state_in_case: &'static str,
    pub(crate) state_dismissed: &'static str,
    pub(crate) all: &'static str,
    pub(crate) rule: &'static str,
    pub(crate) filter: &'static str,
    pub(crate) no_alerts: &'static str,
    pub(crate) select: &'static str,
    pub(crate) select_for_case: &'static str,
    pub(crate) open_case_with_selected: &'static str,
    pub(crate) opened: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) count: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) entries_raised: &'static str,
    pub(crate) dismiss: &'static str,
    pub(crate) all_of_operator: &'static str,

    pub(crate) cases_title: &'static str,
    pub(crate) case_title: &'static str,
    pub(crate) case_open: &'static str,
    pub(crate) case_investigating: &'static str,
    pub(crate) case_closed: &'static str,
    pub(crate) assignee: &'static str,
    pub(crate) disposition: &'static str,
    pub(crate) no_cases: &'static str,
    pub(crate) open_case: &'static str,
    pub(crate) closed_at: &'static str,
    pub(crate) events: &'static str,
    pub(crate) add_note: &'static str,
    pub(crate) assign: &'static str,
    pub(crate) start_investigating: &'static str,
    pub(crate) close_case: &'static str,

    pub(crate) checkpoints_title: &'static str,
    pub(crate) checkpoints_intro: &'static str,
    pub(crate) consistent_with_older: &'static str,
    pub(crate) oldest_checkpoint: &'static str,
    pub(crate) older_checkpoint: &'static str,
    pub(crate) bad_signature: &'static str,
    pub(crate) older: &'static str,
}

impl Text {
    /// What a user name must be, for the login form.
    pub(crate) fn user_error(&self, why: UserError) -> &'static str {
        match (self.lang, why) {
            (Lang::Zh, UserError::Empty) => "请填写用户名。",
            (Lang::Zh, UserError::TooLong) => "用户名最多 64 个字符。",
            (Lang::Zh, UserError::Characters) => "用户名只能包含英文字母、数字和 . _ - @(例如工号或拼音)。",
            (Lang::Zh, UserError::IdDigits) => "用户名不能含有 15 位以上连续数字:日志中的标签从不携带身份证号码。",
            (Lang::En, UserError::Empty) => "Enter a user name.",
            (Lang::En, UserError::TooLong) => "A user name is at most 64 characters.",
            (Lang::En, UserError::Characters) => {
                "A user name holds only ASCII letters, digits and . _ - @ (a staff number, say)."
            }
            (Lang::En, UserError::IdDigits) => {
                "A user name cannot hold a run of 15 or more digits: labels in the log never carry an ID number."
            }
        }
    }

    /// An action as people name it.
    pub(crate) fn action_name(&self, action: &str) -> String {
        let named = match (self.lang, action) {
            (Lang::Zh, "ExchangeService/Query") => "查询数据",
            (Lang::Zh, "ExchangeService/Check") => "资格核验",
            (Lang::Zh, "ConsentService/Grant") => "授权同意",
            (Lang::Zh, "ConsentService/Withdraw") => "撤回同意",
            (Lang::Zh, "ConsentService/Get") | (Lang::Zh, "ConsentService/List") => "查看同意",
            (Lang::Zh, "AuditService/AccessHistory") => "查看访问记录",
            (Lang::Zh, "CommitmentService/Record") => "记录告知承诺",
            (Lang::Zh, "CommitmentService/Verify") => "核查告知承诺",
            (Lang::Zh, "CorrectionService/Object") => "提出异议",
            (Lang::Zh, "CorrectionService/Resolve") => "异议处理",
            (Lang::Zh, "CorrectionService/Notify") => "通知更正",
            (Lang::En, "ExchangeService/Query") => "Data query",
            (Lang::En, "ExchangeService/Check") => "Eligibility check",
            (Lang::En, "ConsentService/Grant") => "Consent granted",
            (Lang::En, "ConsentService/Withdraw") => "Consent withdrawn",
            (Lang::En, "ConsentService/Get") | (Lang::En, "ConsentService/List") => "Consent viewed",
            (Lang::En, "AuditService/AccessHistory") => "Access history viewed",
            (Lang::En, "CommitmentService/Record") => "Commitment recorded",
            (Lang::En, "CommitmentService/Verify") => "Commitment checked",
            (Lang::En, "CorrectionService/Object") => "Objection raised",
            (Lang::En, "CorrectionService/Resolve") => "Objection resolved",
            (Lang::En, "CorrectionService/Notify") => "Correction sent",
            _ => return action.to_owned(),
        };
        named.to_owned()
    }

    pub(crate) fn severity_name(&self, severity: i32) -> &'static str {
        let zh = self.lang == Lang::Zh;
        match Severity::try_from(severity) {
            Ok(Severity::High) => {
                if zh {
                    "高"
                } else {
                    "high"
                }
            }
            Ok(Severity::Medium) => {
                if zh {
                    "中"
                } else {
                    "medium"
                }
            }
            Ok(Severity::Low) => {
                if zh {
                    "低"
                } else {
                    "low"
                }
            }
            _ => "",
        }
    }

    pub(crate) fn alert_state_name(&self, state: i32) -> &'static str {
        match AlertState::try_from(state) {
            Ok(AlertState::AlertOpen) => self.state_open,
            Ok(AlertState::AlertInCase) => self.state_in_case,
            Ok(AlertState::AlertDismissed) => self.state_dismissed,
            _ => "",
        }
    }

    pub(crate) fn case_state_name(&self, state: i32) -> &'static str {
        match CaseState::try_from(state) {
            Ok(CaseState::CaseOpen) => self.case_open,
            Ok(CaseState::CaseInvestigating) => self.case_investigating,
            Ok(CaseState::CaseClosed) => self.case_closed,
            _ => "",
        }
    }

    pub(crate) fn disposition_name(&self, disposition: i32) -> &'static str {
        let zh = self.lang == Lang::Zh;
        match Disposition::try_from(disposition) {
            Ok(Disposition::Justified) => {
                if zh {
                    "正当访问"
                } else {
                    "justified"
                }
            }
            Ok(Disposition::Misuse) => {
                if zh {
                    "滥用"
                } else {
                    "misuse"
                }
            }
            Ok(Disposition::FalsePositive) => {
                if zh {
                    "误报"
                } else {
                    "false positive"
                }
            }
            _ => "",
        }
    }

    pub(crate) fn results_from(&self, first: u64, last: u64) -> String {
        match self.lang {
            Lang::Zh => format!("日志索引 {first} 至 {last}"),
            Lang::En => format!("Log indices {first} to {last}"),
        }
    }

    pub(crate) fn evaluated(&self, through: u64) -> String {
        match self.lang {
            Lang::Zh => format!("告警规则已检查至日志第 {through} 条。"),
            Lang::En => format!("The alert rules have read the log through {through} entries."),
        }
    }

    pub(crate) fn inclusion_in(&self, size: u64) -> String {
        match self.lang {
            Lang::Zh => format!("证明针对含 {size} 条记录、已签名的检查点,其根哈希为"),
            Lang::En => format!("Proven against the signed checkpoint of {size} entries, root"),
        }
    }
}

static ZH: Text = Text {
    lang: Lang::Zh,
    brand: "civex 监督台",
    skip_to_content: "跳到正文",
    nav_label: "主导航",
    nav_overview: "概览",
    nav_search: "检索日志",
    nav_history: "公民访问记录",
    nav_alerts: "告警",
    nav_cases: "案件",
    nav_checkpoints: "校验",
    language: "语言",
    signed_in_as: "当前用户",
    log_out: "退出",
    logged_out: "已退出",

    login_title: "登录监督台",
    login_intro: "请输入您的用户名。您在本台的每一次操作都会以此名记入审计日志。",
    login_needed: "请打开监督台启动时打印的登录链接(console: http://…/login?token=…)。每个链接只能登录一次,用过之后监督台会打印下一个。",
    login_used: "此登录链接已经用过或已失效。请使用监督台最新打印的链接。",
    user_name: "用户名",
    user_help: "工号或拼音,只含英文字母、数字和 . _ - @。",
    log_in: "登录",

    error_title: "出错了",
    gateway_refused: "网关拒绝或未能完成此请求。",
    reason: "原因",
    message: "说明",
    grpc_status: "gRPC 状态",
    bad_input: "输入有误",
    csrf_refused: "此表单不是从本会话的页面提交的(CSRF 校验未通过),未做任何更改。请刷新页面后重试。",
    not_found: "没有这个页面。",
    bad_time: "不是有效时间:请用 2026-12-02T14:00(UTC+8)或 RFC 3339 格式",
    bad_decision: "只能是 allow 或 deny",
    bad_page_size: "须为 1 至 1000 之间的整数",
    bad_index: "须为非负整数",
    bad_state: "不是已知状态",
    bad_disposition: "结案须选择处理结论",
    bad_op: "不是已知操作",

    overview_title: "概览",
    log_heading: "审计日志",
    tree_size: "记录条数",
    root_hash: "根哈希",
    signature: "签名",
    consistent_with_previous: "与上一检查点一致",
    all_checkpoints: "全部检查点及一致性证明",
    no_checkpoints: "日志尚无已签名的检查点。",
    day_heading: "最近 24 小时",
    chart_title: "每小时调用与拒绝次数(最近 24 小时)",
    per_hour: "每小时(UTC+8)",
    per_agency: "各机构(最近 24 小时)",
    hour: "小时",
    calls: "调用",
    refusals: "拒绝",
    hatched: "(斜线)",
    total: "合计",
    open_alerts: "未处理告警",
    no_open_alerts: "没有未处理的告警。",
    all_open_alerts: "全部未处理告警",

    search_title: "检索日志",
    search_help: "按任一条件检索;不填的条件不限。身份证号码只用于检索,不会出现在日志中。",
    filters: "检索条件",
    citizen_id: "公民身份号码",
    citizen_id_help: "18 位,只用于检索",
    citizen_ref: "公民化名(64 位十六进制)",
    agency: "机构",
    operator: "经办人",
    action: "操作",
    decision: "结果",
    any: "不限",
    allowed: "允许",
    denied: "拒绝",
    since: "起始时间",
    until: "截止时间",
    request_id: "请求编号",
    consent_id: "同意编号",
    page_size: "每页条数",
    search: "检索",
    clear: "清空",
    results: "结果",
    no_results: "没有符合条件的记录。",
    next_page: "下一页",
    no_more: "没有更多记录。",
    index: "索引",
    time: "时间",
    purpose: "用途",

    entry_title: "日志记录",
    certificate: "证书序列号",
    scopes: "数据项",
    related: "关联人员化名",
    subject: "对象",
    note: "备注",
    consent: "同意",
    no_consent: "此记录未使用同意。",
    consent_uses: "使用的同意",
    granted: "授权",
    granted_for: "授权范围",
    by: "经",
    inclusion: "包含证明",
    undecodable: "此记录无法解码:日志可能已损坏。",
    verified: "已验证",
    failed: "验证失败",

    history_title: "公民访问记录",
    history_help: "输入公民身份号码,查看并打印谁在何时、为何用途访问了其数据。",
    show_history: "查看",
    history_heading: "个人数据访问记录",
    printed_at: "打印时间",
    printed_by: "经办人",
    history_empty: "没有访问此公民数据的记录。",
    history_footer: "本记录取自 civex 防篡改审计日志;每条记录均可按其索引核验。",
    who: "访问机构 / 经办人",
    what: "事项",
    print: "打印",

    alerts_title: "告警",
    alert_title: "告警",
    alerts: "告警",
    state: "状态",
    state_open: "未处理",
    state_in_case: "已立案",
    state_dismissed: "已驳回",
    all: "全部",
    rule: "规则",
    filter: "筛选",
    no_alerts: "没有符合条件的告警。",
    select: "选择",
    select_for_case: "选入案件",
    open_case_with_selected: "以所选告警立案",
    opened: "发现时间",
    severity: "级别",
    count: "次数",
    summary: "摘要",
    entries_raised: "触发告警的日志记录",
    dismiss: "驳回告警",
    all_of_operator: "并入此经办人的全部未处理告警",

    cases_title: "案件",
    case_title: "案件",
    case_open: "已立案",
    case_investigating: "调查中",
    case_closed: "已结案",
    assignee: "承办人",
    disposition: "处理结论",
    no_cases: "没有符合条件的案件。",
    open_case: "立案",
    closed_at: "结案时间",
    events: "经过",
    add_note: "添加备注",
    assign: "指派",
    start_investigating: "开始调查",
    close_case: "结案",

    checkpoints_title: "检查点与一致性",
    checkpoints_intro: "日志保存的已签名检查点,从新到旧;每个签名都用网关的验证密钥核对,每个检查点都用一致性证明核对它是否延续了前一个。验证密钥:",
    consistent_with_older: "与更早的检查点一致",
    oldest_checkpoint: "最早的检查点",
    older_checkpoint: "更早的检查点",
    bad_signature: "签名无效,无法核对",
    older: "更早的检查点",
};

static EN: Text = Text {
    lang: Lang::En,
    brand: "civex oversight",
    skip_to_content: "Skip to content",
    nav_label: "Main",
    nav_overview: "Overview",
    nav_search: "Search the log",
    nav_history: "Citizen history",
    nav_alerts: "Alerts",
    nav_cases: "Cases",
    nav_checkpoints: "Verification",
    language: "Language",
    signed_in_as: "Signed in as",
    log_out: "Log out",
    logged_out: "Logged out",

    login_title: "Log in to the console",
    login_intro: "Enter your user name. Everything you do here is recorded in the audit log under it.",
    login_needed: "Open the login link the console printed when it started (console: http://…/login?token=…). Each link logs in once; after that the console prints the next one.",
    login_used: "This login link was used already or is out of date. Use the newest link the console printed.",
    user_name: "User name",
    user_help: "A staff number or your name in ASCII: letters, digits and . _ - @.",
    log_in: "Log in",

    error_title: "Something went wrong",
    gateway_refused: "The gateway refused or could not complete this request.",
    reason: "Reason",
    message: "Message",
    grpc_status: "gRPC status",
    bad_input: "Check what you entered",
    csrf_refused: "This form was not sent from a page of this session (CSRF check failed); nothing was changed. Reload the page and try again.",
    not_found: "There is no such page.",
    bad_time: "not a time: use 2026-12-02T14:00 (UTC+8) or RFC 3339",
    bad_decision: "must be allow or deny",
    bad_page_size: "must be a whole number from 1 to 1000",
    bad_index: "must be a whole number",
    bad_state: "not a known state",
    bad_disposition: "closing a case needs a disposition",
    bad_op: "not a known action",

    overview_title: "Overview",
    log_heading: "Audit log",
    tree_size: "Entries",
    root_hash: "Root hash",
    signature: "Signature",
    consistent_with_previous: "Consistent with the previous checkpoint",
    all_checkpoints: "Every checkpoint, with its consistency proof",
    no_checkpoints: "The log has no signed checkpoint yet.",
    day_heading: "The last 24 hours",
    chart_title: "Calls and refusals per hour, last 24 hours",
    per_hour: "Per hour (UTC+8)",
    per_agency: "Per agency, last 24 hours",
    hour: "Hour",
    calls: "Calls",
    refusals: "Refusals",
    hatched: "(hatched)",
    total: "Total",
    open_alerts: "Open alerts",
    no_open_alerts: "No open alerts.",
    all_open_alerts: "All open alerts",

    search_title: "Search the log",
    search_help: "Search by any of the filters; those left empty match everything. A citizen ID number is used only to search and never appears in the log.",
    filters: "Filters",
    citizen_id: "Citizen ID number",
    citizen_id_help: "18 digits, used only to search",
    citizen_ref: "Citizen pseudonym (64 hex characters)",
    agency: "Agency",
    operator: "Operator",
    action: "Action",
    decision: "Decision",
    any: "Any",
    allowed: "allowed",
    denied: "refused",
    since: "From",
    until: "Until",
    request_id: "Request id",
    consent_id: "Consent id",
    page_size: "Per page",
    search: "Search",
    clear: "Clear",
    results: "Results",
    no_results: "No entries match.",
    next_page: "Next page",
    no_more: "No more entries.",
    index: "Index",
    time: "Time",
    purpose: "Purpose",

    entry_title: "Log entry",
    certificate: "Certificate serial",
    scopes: "Data items",
    related: "Related people (pseudonyms)",
    subject: "Subject",
    note: "Note",
    consent: "Consent",
    no_consent: "This entry used no consent.",
    consent_uses: "Consents used",
    granted: "Granted",
    granted_for: "Granted for",
    by: "by",
    inclusion: "Inclusion proof",
    undecodable: "This entry cannot be decoded: the log may be damaged.",
    verified: "verified",
    failed: "verification FAILED",

    history_title: "Citizen access history",
    history_help: "Enter a citizen ID number to see, and print, who looked at the citizen's data, when and for what purpose.",
    show_history: "Show",
    history_heading: "Who accessed your data",
    printed_at: "Printed",
    printed_by: "Printed by",
    history_empty: "No one has accessed this citizen's data.",
    history_footer: "Taken from the civex tamper-evident audit log; every entry can be verified by its index.",
    who: "Agency / operator",
    what: "What",
    print: "Print",

    alerts_title: "Alerts",
    alert_title: "Alert",
    alerts: "Alerts",
    state: "State",
    state_open: "open",
    state_in_case: "in a case",
    state_dismissed: "dismissed",
    all: "All",
    rule: "Rule",
    filter: "Filter",
    no_alerts: "No alerts match.",
    select: "Select",
    select_for_case: "Add to the case",
    open_case_with_selected: "Open a case with the selected alerts",
    opened: "Raised",
    severity: "Severity",
    count: "Count",
    summary: "Summary",
    entries_raised: "Entries that raised it",
    dismiss: "Dismiss the alert",
    all_of_operator: "Include every open alert of this operator",

    cases_title: "Cases",
    case_title: "Case",
    case_open: "open",
    case_investigating: "investigating",
    case_closed: "closed",
    assignee: "Assignee",
    disposition: "Disposition",
    no_cases: "No cases match.",
    open_case: "Open a case",
    closed_at: "Closed",
    events: "Events",
    add_note: "Add a note",
    assign: "Assign",
    start_investigating: "Start investigating",
    close_case: "Close the case",

    checkpoints_title: "Checkpoints and consistency",
    checkpoints_intro: "The signed checkpoints the log stored, newest first. Each signature is checked with the gateway's verifier key, and each checkpoint is proven to extend the one before it. Verifier key:",
    consistent_with_older: "Consistent with the older checkpoint",
    oldest_checkpoint: "the oldest checkpoint",
    older_checkpoint: "the older checkpoint",
    bad_signature: "the signature is invalid, so it cannot be checked",
    older: "Older checkpoints",
};
