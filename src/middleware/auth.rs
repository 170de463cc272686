//! Authentication and authorization: `authorization: Bearer <key>` → the key's
//! tenant and roles, checked against the role the called service needs.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::body::Body;
use tower::Service;

use super::{Stage, error_response, is_open, respond, service_of};
use crate::config::AuthConfig;
use crate::error::AppError;
use crate::identity::{Caller, Role};

/// The role each agentd service requires. A service not listed needs a valid key
/// and no particular role.
fn required_role(service: &str) -> Option<Role> {
    match service {
        "agentd.v1.AdminService" => Some(Role::Admin),
        "agentd.v1.AgentService" => Some(Role::Agent),
        _ => None,
    }
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
}

impl Auth {
    /// The stage for the configured keys.
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            keys: Arc::new(KeyStore::from_config(config)),
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
        let service = service_of(path);
        if let Some(role) = required_role(service)
            && !caller.has_role(role)
        {
            return Err(AppError::PermissionDenied {
                key_name: caller.key_name,
                role,
                service: service.to_owned(),
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
