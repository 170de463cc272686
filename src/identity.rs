//! Who is calling: tenants, roles and the authenticated caller.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A tenant id: 1 to 64 characters from `[A-Za-z0-9_.-]`. Holding one means it is valid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The tenant of every call when auth is disabled.
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if value.is_empty() || value.len() > 64 || !value.chars().all(valid_char) {
            return Err(format!(
                "invalid tenant id {value:?}: use 1 to 64 characters from [A-Za-z0-9_.-]"
            ));
        }
        Ok(Self(value))
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission an API key can hold. Roles do not imply one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Run the agent (AgentService).
    Agent,
    /// Add and remove documents (RetrievalService writes).
    Ingest,
    /// Inspect and operate the instance (AdminService).
    Admin,
}

impl Role {
    /// Every role, for the anonymous caller of an instance with auth disabled.
    pub const ALL: [Role; 3] = [Role::Agent, Role::Ingest, Role::Admin];

    /// The role's name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_validated() {
        assert!(TenantId::try_from("acme-1.eu_west".to_owned()).is_ok());
        for bad in ["", "a b", "tenant/other", &"x".repeat(65)] {
            assert!(
                TenantId::try_from(bad.to_owned()).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
