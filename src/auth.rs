//! Access levels: the roles, the token file, and the one table of who may do what.
//!
//! Every API route has exactly one entry in [`RULES`] (a card payment has one per
//! `type`). The API checks it before a handler runs (and, for `/v1/payments`, again once
//! the body's `type` is known); the README's "Access levels" table is this table.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// A client's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sells: receipts, card sales, printouts, status, its own jobs.
    Cashier,
    /// Everything a cashier does, plus refunds, reversals, cash in/out, daily reports,
    /// terminal end of day, cancelling, every job and the audit log.
    Manager,
    /// Reads: status, devices, health and every job; no sales and nothing fiscal.
    Technician,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
            Role::Technician => "technician",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "cashier" => Some(Role::Cashier),
            "manager" => Some(Role::Manager),
            "technician" => Some(Role::Technician),
            _ => None,
        }
    }
}

/// The name jobs and audit entries carry for a request on the Unix socket without a token.
pub const SOCKET: &str = "socket";

/// Who sent a request: a token's name (or [`SOCKET`]) and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// Whether this principal may see jobs other clients created.
    pub fn sees_all_jobs(&self) -> bool {
        self.role != Role::Cashier
    }
}

const ALL: &[Role] = &[Role::Cashier, Role::Manager, Role::Technician];
const SELLS: &[Role] = &[Role::Cashier, Role::Manager];
const MANAGES: &[Role] = &[Role::Manager];
const OPERATES: &[Role] = &[Role::Manager, Role::Technician];

/// One line of the access table.
#[derive(Debug)]
pub struct Rule {
    pub method: &'static str,
    /// The route as the router names it, e.g. `/v1/jobs/{id}`.
    pub route: &'static str,
    /// For `POST /v1/payments`: the body's `type`.
    pub payment_type: Option<&'static str>,
    /// The roles allowed.
    pub roles: &'static [Role],
    /// Whether the operation is fiscal (creates or changes a job) and so goes to the audit log.
    pub audited: bool,
}

const fn rule(method: &'static str, route: &'static str, roles: &'static [Role]) -> Rule {
    Rule {
        method,
        route,
        payment_type: None,
        roles,
        audited: matches!(method.as_bytes(), b"POST"),
    }
}

const fn payment(kind: &'static str, roles: &'static [Role]) -> Rule {
    Rule {
        payment_type: Some(kind),
        ..rule("POST", "/v1/payments", roles)
    }
}

/// The access table. Cashiers see only their own jobs (see [`Principal::sees_all_jobs`]).
pub const RULES: &[Rule] = &[
    rule("GET", "/v1/health", ALL),
    rule("GET", "/v1/devices", ALL),
    rule("GET", "/v1/jobs", ALL),
    rule("GET", "/v1/jobs/{id}", ALL),
    rule("POST", "/v1/receipts", SELLS),
    rule("POST", "/v1/sales", SELLS),
    payment("sale", SELLS),
    rule("POST", "/v1/printouts", SELLS),
    rule("POST", "/v1/invoices", SELLS),
    rule("POST", "/v1/jobs/{id}/copy", SELLS),
    payment("refund", MANAGES),
    payment("reversal", MANAGES),
    rule("POST", "/v1/sales/{id}/reverse", MANAGES),
    rule("POST", "/v1/payments/{id}/resolve", MANAGES),
    rule("POST", "/v1/cash", MANAGES),
    rule("POST", "/v1/reports/daily", MANAGES),
    rule("POST", "/v1/reports/periodic", MANAGES),
    rule("POST", "/v1/terminals/{id}/end-of-day", MANAGES),
    rule("POST", "/v1/jobs/{id}/cancel", MANAGES),
    rule("GET", "/v1/audit", MANAGES),
    rule("GET", "/v1/events", ALL),
    rule("GET", "/v1/today", ALL),
    rule("GET", "/metrics", OPERATES),
    rule("GET", "/", ALL),
];

/// The roles allowed to run `method route`. For `/v1/payments` with `payment_type` unknown
/// (the body is not read yet) these are the roles allowed any payment type; the handler
/// checks again with the type. A route missing from the table is for managers only. A
/// `HEAD` is allowed to whoever may `GET` the route.
pub fn allowed_roles(method: &str, route: &str, payment_type: Option<&str>) -> Vec<Role> {
    let method = as_table_method(method);
    let mut roles: Vec<Role> = Vec::new();
    let mut found = false;
    for r in RULES
        .iter()
        .filter(|r| r.method == method && r.route == route)
    {
        if payment_type.is_some() && r.payment_type.is_some() && r.payment_type != payment_type {
            continue;
        }
        found = true;
        for role in r.roles {
            if !roles.contains(role) {
                roles.push(*role);
            }
        }
    }
    if !found {
        roles.push(Role::Manager);
    }
    roles
}

/// The method the access table lists for `method`: `HEAD` is the `GET` it mirrors.
fn as_table_method(method: &str) -> &str {
    if method.eq_ignore_ascii_case("HEAD") {
        "GET"
    } else {
        method
    }
}

/// Whether `method route` is a fiscal operation recorded in the audit log (refusals are
/// recorded for every route).
pub fn audited(method: &str, route: &str) -> bool {
    let method = as_table_method(method);
    RULES
        .iter()
        .find(|r| r.method == method && r.route == route)
        .is_none_or(|r| r.audited)
}

/// `"manager"` or `"cashier or manager"`, for error messages.
pub fn role_list(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    names.join(" or ")
}

/// Accepted bearer tokens, by SHA-256 hash.
#[derive(Clone, Default)]
pub struct Tokens {
    by_hash: Arc<HashMap<String, Principal>>,
}

impl Tokens {
    /// Read a token file: one `<sha256-hex> <name> [role]` per line (role `cashier` when
    /// left out); `#` starts a comment. The file must not be readable by group or others.
    pub fn load(path: &std::path::Path) -> Result<Tokens, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{}: token file is readable by others; chmod 600 it",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|(line, m)| format!("{}:{line}: {m}", path.display()))
    }

    /// Parse token file text; an error carries its 1-based line.
    pub fn parse(text: &str) -> Result<Tokens, (usize, String)> {
        let mut by_hash: HashMap<String, Principal> = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let hash = parts[0].to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err((
                    n,
                    "expected a SHA-256 hex digest first (make one with `printf %s \"$TOKEN\" | sha256sum`)".into(),
                ));
            }
            let Some(name) = parts.get(1) else {
                return Err((n, "a token needs a name after its hash".into()));
            };
            if name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
            {
                return Err((
                    n,
                    format!(
                        "token name {name:?} must be 1..64 letters, digits, '-', '_', '.' or '@'"
                    ),
                ));
            }
            if *name == SOCKET {
                return Err((
                    n,
                    format!(
                        "the token name {SOCKET:?} is reserved for requests on the Unix socket without a token; pick another"
                    ),
                ));
            }
            let role = match parts.get(2) {
                None => Role::Cashier,
                Some(r) => Role::parse(r).ok_or_else(|| {
                    (
                        n,
                        format!("unknown role {r:?}; use cashier, manager or technician"),
                    )
                })?,
            };
            if parts.len() > 3 {
                return Err((
                    n,
                    format!(
                        "unexpected {:?} after the role; a line is `<sha256-hex> <name> [role]`",
                        parts[3]
                    ),
                ));
            }
            if let Some(first) = names.insert(name.to_string(), n) {
                return Err((
                    n,
                    format!(
                        "token name {name:?} is already used on line {first}; names must be unique"
                    ),
                ));
            }
            let principal = Principal {
                name: name.to_string(),
                role,
            };
            if by_hash.insert(hash, principal).is_some() {
                return Err((
                    n,
                    "this hash is listed twice; give every client its own token".into(),
                ));
            }
        }
        Ok(Tokens {
            by_hash: Arc::new(by_hash),
        })
    }

    /// The principal a bearer token belongs to.
    pub fn check(&self, token: &str) -> Option<&Principal> {
        use sha2::Digest;
        let h = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        self.by_hash.get(&h)
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(t: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(t.as_bytes()))
    }

    #[test]
    fn token_lines_give_names_and_roles() {
        let text = format!(
            "# tokens\n{} pos-1\n{} boss manager # the owner\n\n{} tech technician\n",
            hash("a"),
            hash("b"),
            hash("c")
        );
        let t = Tokens::parse(&text).unwrap();
        assert_eq!(t.check("a").unwrap().role, Role::Cashier);
        assert_eq!(t.check("b").unwrap().name, "boss");
        assert_eq!(t.check("b").unwrap().role, Role::Manager);
        assert_eq!(t.check("c").unwrap().role, Role::Technician);
        assert!(t.check("d").is_none());
    }

    #[test]
    fn bad_token_lines_name_the_line() {
        let h = hash("a");
        let cases = [
            (format!("\n{h} x admin\n"), 2, "unknown role"),
            (
                format!("{h} x\n{} x manager\n", hash("b")),
                2,
                "already used",
            ),
            (format!("{h} x\n{h} y\n"), 2, "listed twice"),
            (format!("{h}\n"), 1, "needs a name"),
            ("abc x\n".to_string(), 1, "SHA-256"),
            (format!("{h} socket\n"), 1, "reserved"),
            (format!("{h} x cashier extra\n"), 1, "unexpected"),
            (format!("{h} bad/name\n"), 1, "must be"),
        ];
        for (text, line, what) in cases {
            let Err((n, m)) = Tokens::parse(&text) else {
                panic!("accepted {text:?}")
            };
            assert_eq!(n, line, "{m}");
            assert!(m.contains(what), "{m}");
        }
    }

    #[test]
    fn the_access_table() {
        use Role::*;
        let may = |role: Role, method: &str, route: &str, ty: Option<&str>| {
            allowed_roles(method, route, ty).contains(&role)
        };
        for role in [Cashier, Manager, Technician] {
            assert!(may(role, "GET", "/v1/health", None));
            assert!(may(role, "GET", "/v1/devices", None));
            assert!(may(role, "GET", "/v1/jobs/{id}", None));
        }
        for route in [
            "/v1/receipts",
            "/v1/sales",
            "/v1/printouts",
            "/v1/invoices",
            "/v1/jobs/{id}/copy",
        ] {
            assert!(may(Cashier, "POST", route, None), "{route}");
            assert!(may(Manager, "POST", route, None), "{route}");
            assert!(!may(Technician, "POST", route, None), "{route}");
        }
        assert!(may(Cashier, "POST", "/v1/payments", Some("sale")));
        assert!(!may(Cashier, "POST", "/v1/payments", Some("refund")));
        assert!(!may(Cashier, "POST", "/v1/payments", Some("reversal")));
        assert!(may(Manager, "POST", "/v1/payments", Some("refund")));
        assert!(!may(Technician, "POST", "/v1/payments", None));
        for route in [
            "/v1/cash",
            "/v1/reports/daily",
            "/v1/reports/periodic",
            "/v1/terminals/{id}/end-of-day",
            "/v1/jobs/{id}/cancel",
            "/v1/sales/{id}/reverse",
        ] {
            assert!(!may(Cashier, "POST", route, None), "{route}");
            assert!(may(Manager, "POST", route, None), "{route}");
            assert!(!may(Technician, "POST", route, None), "{route}");
        }
        assert!(may(Manager, "GET", "/v1/audit", None));
        assert!(!may(Cashier, "GET", "/v1/audit", None));
        assert!(!may(Technician, "GET", "/v1/audit", None));
        // Not in the table: managers only.
        assert_eq!(allowed_roles("POST", "/v1/new", None), vec![Manager]);
        assert!(audited("POST", "/v1/cash") && !audited("GET", "/v1/jobs"));
        // A HEAD is the GET it mirrors: same roles, not a fiscal operation.
        assert_eq!(allowed_roles("HEAD", "/v1/health", None), ALL.to_vec());
        assert!(!audited("HEAD", "/v1/devices"));
    }
}
