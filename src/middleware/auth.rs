//! Authentication and authorization: `authorization: Bearer <key>` → the key's
//! tenant and roles, checked against the roles the called method needs. The
//! table below is the one place roles are required; handlers never check them.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::body::Body;
use tower::Service;

use super::observe::KnownMethods;
use super::{Stage, error_response, is_open, respond};
use crate::config::AuthConfig;
use crate::error::AppError;
use crate::identity::{Caller, Role};

/// The roles each method of agentd's services accepts (any one of them will do).
/// Every method of the contract is listed (a test checks it against the
/// descriptors). A method the server serves without a row here is refused to
/// everyone (deny by default); a path the server does not serve is answered
/// UNIMPLEMENTED once the caller is authenticated. Health and reflection are
/// open (`OPEN_SERVICES`) and need no key at all.
pub const METHOD_ROLES: &[(&str, &[Role])] = &[
    ("/agentd.v1.AgentService/Chat", &[Role::Agent]),
    ("/agentd.v1.AgentService/Ask", &[Role::Agent]),
    ("/agentd.v1.AgentService/GetSession", &[Role::Agent]),
    ("/agentd.v1.AgentService/DeleteSession", &[Role::Agent]),
    (
        "/agentd.v1.RetrievalService/IngestDocuments",
        &[Role::Ingest],
    ),
    (
        "/agentd.v1.RetrievalService/DeleteDocument",
        &[Role::Ingest],
    ),
    (
        "/agentd.v1.RetrievalService/Search",
        &[Role::Agent, Role::Ingest],
    ),
    (
        "/agentd.v1.RetrievalService/ListCollections",
        &[Role::Agent, Role::Ingest],
    ),
    // `admin` acts on its own tenant, `operator` on any (docs/architecture.md).
    (
        "/agentd.v1.AdminService/GetStatus",
        &[Role::Admin, Role::Operator],
    ),
    (
        "/agentd.v1.AdminService/ListModels",
        &[Role::Admin, Role::Operator],
    ),
    (
        "/agentd.v1.AdminService/GetUsage",
        &[Role::Admin, Role::Operator],
    ),
    (
        "/agentd.v1.AdminService/SetBudget",
        &[Role::Admin, Role::Operator],
    ),
    // Breakers are the instance's, shared by every tenant.
    ("/agentd.v1.AdminService/ResetBreaker", &[Role::Operator]),
];

/// The roles a method accepts, if it is an agentd method.
fn accepted_roles(path: &str) -> Option<&'static [Role]> {
    METHOD_ROLES
        .iter()
        .find(|(method, _)| *method == path)
        .map(|(_, roles)| *roles)
}

/// The configured keys, as SHA-256 digests.
#[derive(Debug)]
struct KeyStore {
    enabled: bool,
    keys: Vec<([u8; 32], Caller)>,
}

impl KeyStore {
    fn from_config(config: &AuthConfig) -> Self {
        let keys = config
            .keys
            .iter()
            .map(|key| {
                let caller = Caller {
                    tenant: key.tenant.clone(),
                    roles: key.roles.clone(),
                    key_name: key.name.clone(),
                };
                (*key.sha256.as_bytes(), caller)
            })
            .collect();
        Self {
            enabled: config.enabled,
            keys,
        }
    }

    /// The caller for a presented key. Every configured digest is compared in
    /// constant time, so the answer's timing does not reveal which one matched.
    fn lookup(&self, key: &str) -> Option<&Caller> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (candidate, caller) in &self.keys {
            if bool::from(candidate.ct_eq(&digest)) {
                found = Some(caller);
            }
        }
        found
    }

    fn authenticate<B>(&self, request: &Request<B>) -> Result<Caller, AppError> {
        if !self.enabled {
            return Ok(Caller::anonymous());
        }
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| {
                AppError::Unauthenticated(
                    "missing credentials: send metadata `authorization: Bearer <api key>`"
                        .to_owned(),
                )
            })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                AppError::Unauthenticated(
                    "malformed authorization metadata: expected `Bearer <api key>`".to_owned(),
                )
            })?;
        self.lookup(key)
            .cloned()
            .ok_or_else(|| AppError::Unauthenticated("unknown API key".to_owned()))
    }
}

/// Authenticates every call to a non-open service and puts the [`Caller`] into
/// the request's extensions.
#[derive(Clone, Debug)]
pub struct Auth {
    keys: Arc<KeyStore>,
    served: Arc<KnownMethods>,
}

impl Auth {
    /// The stage for the configured keys, in front of the `served` methods.
    pub fn new(config: &AuthConfig, served: Arc<KnownMethods>) -> Self {
        Self {
            keys: Arc::new(KeyStore::from_config(config)),
            served,
        }
    }

    fn check<B>(&self, request: &Request<B>) -> Result<Option<Caller>, AppError> {
        let path = request.uri().path();
        if is_open(path) {
            return Ok(None);
        }
        let caller = self.keys.authenticate(request)?;
        let span = tracing::Span::current();
        span.record("tenant", caller.tenant.as_str());
        span.record("api_key", caller.key_name.as_str());
        let roles = match accepted_roles(path) {
            Some(roles) => roles,
            // Served, but with no row in the table: nobody may call it.
            None if self.served.contains(path) => &[],
            // Not a method of this server: tonic answers UNIMPLEMENTED.
            None => return Ok(Some(caller)),
        };
        if !roles.iter().any(|role| caller.has_role(*role)) {
            return Err(AppError::PermissionDenied {
                key_name: caller.key_name,
                roles: roles.to_vec(),
                method: path.to_owned(),
            });
        }
        Ok(Some(caller))
    }
}

impl Stage for Auth {
    fn handle<S>(
        &self,
        mut request: Request<Body>,
        next: &mut S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
    {
        match self.check(&request) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                next.call(request).boxed()
            }
            Err(err) => respond(error_response(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;
    use crate::config::{ApiKeyConfig, KeyHash};
    use crate::ids::TenantId;

    fn auth(served: &[&str]) -> Auth {
        let config = AuthConfig {
            enabled: true,
            keys: vec![ApiKeyConfig {
                name: "everything".into(),
                tenant: TenantId::default_tenant(),
                roles: Role::ALL.to_vec(),
                sha256: KeyHash::of_key("k"),
            }],
        };
        Auth::new(&config, Arc::new(KnownMethods::of(served.iter().copied())))
    }

    fn call(path: &str) -> Request<()> {
        Request::builder()
            .uri(path)
            .header("authorization", "Bearer k")
            .body(())
            .unwrap()
    }

    #[test]
    fn a_served_method_without_a_row_is_refused_to_every_key() {
        let secret = "/agentd.v1.AgentService/Secret";
        let err = auth(&[secret]).check(&call(secret)).unwrap_err();
        assert!(
            matches!(&err, AppError::PermissionDenied { roles, .. } if roles.is_empty()),
            "{err:?}"
        );
        // A path the server does not serve passes to tonic (UNIMPLEMENTED).
        assert!(auth(&[]).check(&call("/no.Such/Method")).unwrap().is_some());
        // A listed method takes its roles.
        assert!(
            auth(&[])
                .check(&call("/agentd.v1.AgentService/Chat"))
                .is_ok()
        );
    }

    #[test]
    fn every_method_of_the_contract_has_its_roles() {
        let descriptors =
            prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = BTreeSet::new();
        for file in descriptors.file {
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        let listed: BTreeSet<String> = METHOD_ROLES.iter().map(|(m, _)| (*m).to_owned()).collect();
        assert_eq!(methods, listed);
        assert!(METHOD_ROLES.iter().all(|(_, roles)| !roles.is_empty()));
    }
}
