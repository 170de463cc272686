//! Authentication and authorization: `authorization: Bearer <key>` → the key's
//! tenant and roles, checked against the role the called service needs.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::{Request, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::body::Body;
use tower::{Layer, Service};

use super::{error_response, is_open, service_of};
use crate::config::AuthConfig;
use crate::error::AppError;
use crate::identity::{Caller, Role};

/// The role each agentd service requires. A service not listed needs a valid key
/// and no particular role.
fn required_role(service: &str) -> Option<Role> {
    match service {
        "agentd.v1.AdminService" => Some(Role::Admin),
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

/// Layer that authenticates every call to a non-open service and puts the
/// [`Caller`] into the request's extensions.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    keys: Arc<KeyStore>,
}

impl AuthLayer {
    /// A layer for the configured keys.
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            keys: Arc::new(KeyStore::from_config(config)),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    keys: Arc<KeyStore>,
}

impl<S> Service<Request<Body>> for Auth<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if is_open(path) {
            return Either::Right(self.inner.call(request));
        }
        let service = service_of(path).to_owned();
        let caller = match self.keys.authenticate(&request) {
            Ok(caller) => caller,
            Err(err) => return Either::Left(ready(Ok(error_response(err)))),
        };
        let span = tracing::Span::current();
        span.record("tenant", caller.tenant.as_str());
        span.record("api_key", caller.key_name.as_str());
        if let Some(role) = required_role(&service)
            && !caller.has_role(role)
        {
            let err = AppError::PermissionDenied {
                key_name: caller.key_name,
                role,
                service,
            };
            return Either::Left(ready(Ok(error_response(err))));
        }
        request.extensions_mut().insert(caller);
        Either::Right(self.inner.call(request))
    }
}
