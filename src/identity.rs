//! Who is calling: the roles an API key can hold, the authenticated caller, and
//! the tenants an administrative call may act on.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

/// A permission an API key can hold. The set is closed, and roles do not imply
/// one another: a key holds exactly the roles configured for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Run the agent (AgentService) and search knowledge.
    Agent,
    /// Add, remove and search documents (RetrievalService).
    Ingest,
    /// Administer the caller's own tenant (AdminService).
    Admin,
    /// Administer the instance and every tenant (AdminService).
    Operator,
}

impl Role {
    /// Every role, for the anonymous caller of an instance with auth disabled.
    pub const ALL: [Role; 4] = [Role::Agent, Role::Ingest, Role::Admin, Role::Operator];

    /// The role's name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of one request, put in the request's extensions by the
/// auth layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant the call acts for; every read and write is scoped to it.
    pub tenant: TenantId,
    /// The roles the caller's key holds.
    pub roles: Vec<Role>,
    /// The configured name of the key, or "anonymous" with auth disabled.
    pub key_name: String,
}

/// The tenants an administrative call may see and act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminScope {
    /// Every tenant and the instance itself (`operator`).
    All,
    /// The caller's own tenant only (`admin`).
    Tenant(TenantId),
}

impl AdminScope {
    /// Whether the scope covers `tenant`.
    pub fn covers(&self, tenant: &TenantId) -> bool {
        match self {
            AdminScope::All => true,
            AdminScope::Tenant(own) => own == tenant,
        }
    }
}

impl Caller {
    /// The caller of every request when auth is disabled.
    pub fn anonymous() -> Self {
        Self {
            tenant: TenantId::default_tenant(),
            roles: Role::ALL.to_vec(),
            key_name: "anonymous".to_owned(),
        }
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// What an administrative call of this caller covers: every tenant with
    /// `operator`, else the caller's own tenant (the auth layer has already
    /// refused callers with neither `admin` nor `operator`).
    pub fn admin_scope(&self) -> AdminScope {
        if self.has_role(Role::Operator) {
            AdminScope::All
        } else {
            AdminScope::Tenant(self.tenant.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(tenant: &str, roles: &[Role]) -> Caller {
        Caller {
            tenant: TenantId::try_from(tenant).unwrap(),
            roles: roles.to_vec(),
            key_name: "k".into(),
        }
    }

    #[test]
    fn an_operator_covers_every_tenant_and_an_admin_only_its_own() {
        let acme = TenantId::try_from("acme").unwrap();
        let globex = TenantId::try_from("globex").unwrap();
        let admin = caller("acme", &[Role::Admin]).admin_scope();
        assert!(admin.covers(&acme));
        assert!(!admin.covers(&globex));
        let operator = caller("ops", &[Role::Operator]).admin_scope();
        assert!(operator.covers(&acme) && operator.covers(&globex));
    }
}
