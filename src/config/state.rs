//! `[state]`: where shared state (sessions now; budgets and rate limits later)
//! lives: the embedded stores under `storage.data_dir`, or one Redis that several
//! agentd processes share.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Most connections `state.redis_pool_size` may ask for. Each is a multiplexed
/// connection that carries many calls at once, so a handful is plenty.
pub const MAX_REDIS_POOL_SIZE: usize = 64;

/// `[state]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Which backend holds the state.
    pub backend: StateBackend,
    /// `redis://`, `rediss://` (TLS) or `redis+unix://` URL of the Redis primary.
    /// A password in it is shown as `***` in dumps.
    #[serde(serialize_with = "serialize_redacted")]
    pub redis_url: String,
    /// Password of the Redis user (a secret); overrides one in the URL.
    #[serde(default)]
    pub redis_password: Option<Secret>,
    /// PEM file of the CA that signed the Redis server's certificate, for
    /// `rediss://` with a private CA; none means the system's roots.
    #[serde(default)]
    pub redis_ca_file: Option<PathBuf>,
    /// Multiplexed connections to Redis.
    pub redis_pool_size: usize,
    /// Time to open a connection.
    #[serde(with = "humantime_serde")]
    pub redis_connect_timeout: Duration,
    /// Time for Redis to answer one command.
    #[serde(with = "humantime_serde")]
    pub redis_command_timeout: Duration,
    /// Replicas that must confirm a turn's write (Redis `WAIT`); 0 waits for none.
    pub redis_wait_replicas: u32,
    /// How long to wait for them; past it the turn stands, marked unconfirmed.
    #[serde(with = "humantime_serde")]
    pub redis_wait_timeout: Duration,
    /// First part of every key, so deployments can share one Redis.
    pub redis_key_prefix: String,
}

/// `state.backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// redb under `storage.data_dir`: one process.
    Embedded,
    /// One Redis shared by every process.
    Redis,
}

impl StateConfig {
    /// Problems, each naming its key. With the embedded backend the Redis keys
    /// are still checked, so a typo is caught before the day it is switched on.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match redis_scheme(&self.redis_url) {
            Err(reason) => problems.push(format!(
                "state.redis_url: {:?} is not a Redis URL: {reason}",
                self.redis_url
            )),
            Ok(scheme) => {
                if self.redis_ca_file.is_some() && scheme != "rediss" {
                    problems.push(
                        "state.redis_ca_file: a CA file needs TLS, i.e. a rediss:// URL in \
                         state.redis_url"
                            .to_owned(),
                    );
                }
            }
        }
        if let Some(path) = &self.redis_ca_file {
            match std::fs::read(path) {
                Err(err) => problems.push(format!(
                    "state.redis_ca_file: cannot read {}: {err}",
                    path.display()
                )),
                Ok(pem) if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                    problems.push(format!(
                        "state.redis_ca_file: {} holds no PEM certificate",
                        path.display()
                    ));
                }
                Ok(_) => {}
            }
        }
        if !(1..=MAX_REDIS_POOL_SIZE).contains(&self.redis_pool_size) {
            problems.push(format!(
                "state.redis_pool_size: must be 1 to {MAX_REDIS_POOL_SIZE}"
            ));
        }
        for (key, value) in [
            ("state.redis_connect_timeout", self.redis_connect_timeout),
            ("state.redis_command_timeout", self.redis_command_timeout),
            ("state.redis_wait_timeout", self.redis_wait_timeout),
        ] {
            if value.is_zero() {
                problems.push(format!("{key}: must be longer than 0s"));
            }
        }
        if self.redis_wait_replicas > 0 && self.redis_wait_timeout >= self.redis_command_timeout {
            problems.push(format!(
                "state.redis_wait_timeout: {} must be shorter than state.redis_command_timeout \
                 ({}), which bounds the WAIT command too",
                humantime::format_duration(self.redis_wait_timeout),
                humantime::format_duration(self.redis_command_timeout)
            ));
        }
        let prefix_ok = !self.redis_key_prefix.is_empty()
            && self.redis_key_prefix.len() <= 64
            && self
                .redis_key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !prefix_ok {
            problems.push(
                "state.redis_key_prefix: must be 1 to 64 letters, digits, '_', '-' or '.'"
                    .to_owned(),
            );
        }
        problems
    }
}

/// `url` with any password replaced by `***`, for logs and dumps.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have credentials, which have no password.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

fn serialize_redacted<S: serde::Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redacted_url(url))
}

/// The scheme of a Redis URL the client accepts, or why it is not one.
fn redis_scheme(url: &str) -> Result<&'static str, String> {
    let parsed = reqwest::Url::parse(url).map_err(|err| err.to_string())?;
    let scheme = match parsed.scheme() {
        "redis" => "redis",
        "rediss" => "rediss",
        "redis+unix" => "redis+unix",
        other => {
            return Err(format!(
                "scheme {other:?}; expected redis://, rediss:// or redis+unix://"
            ));
        }
    };
    if scheme == "redis+unix" {
        if parsed.path().is_empty() || parsed.path() == "/" {
            return Err("redis+unix:// needs the socket's path".to_owned());
        }
    } else if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    // The client's own parser decides the rest (database number, query options).
    redis::IntoConnectionInfo::into_connection_info(url).map_err(|err| err.to_string())?;
    Ok(scheme)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(state: &str) -> String {
        Config::from_toml(&format!("[state]\n{state}"))
            .map(|_| String::new())
            .unwrap_or_else(|err| err.to_string())
    }

    #[test]
    fn the_default_is_embedded_and_redis_urls_of_every_kind_parse() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.state.backend, super::StateBackend::Embedded);
        for url in [
            "redis://127.0.0.1:6379/0",
            "rediss://redis.example:6380",
            "redis+unix:///run/redis.sock",
            "redis://user@host:1/2",
        ] {
            assert_eq!(problems(&format!("redis_url = {url:?}")), "", "{url}");
        }
    }

    #[test]
    fn malformed_redis_settings_name_their_key() {
        let cases = [
            ("redis_url = \"http://host:6379\"", "state.redis_url"),
            ("redis_url = \"redis://\"", "state.redis_url"),
            ("redis_url = \"redis+unix://\"", "state.redis_url"),
            ("redis_url = \"not a url\"", "state.redis_url"),
            ("redis_url = \"redis://h:1/notadb\"", "state.redis_url"),
            (
                "redis_ca_file = \"/nonexistent/ca.pem\"",
                "state.redis_ca_file",
            ),
            ("redis_pool_size = 0", "state.redis_pool_size"),
            ("redis_pool_size = 65", "state.redis_pool_size"),
            (
                "redis_connect_timeout = \"0s\"",
                "state.redis_connect_timeout",
            ),
            (
                "redis_command_timeout = \"0s\"",
                "state.redis_command_timeout",
            ),
            (
                "redis_wait_replicas = 1\nredis_wait_timeout = \"2s\"\nredis_command_timeout = \"1s\"",
                "state.redis_wait_timeout",
            ),
            ("redis_key_prefix = \"a{b}\"", "state.redis_key_prefix"),
            ("backend = \"memcached\"", "state.backend"),
            (
                "redis_password = { env = \"AGENTD_TEST_UNSET_VAR\" }",
                "state.redis_password",
            ),
        ];
        for (toml, key) in cases {
            let text = problems(toml);
            assert!(text.contains(key), "{toml}: {text}");
        }
    }

    #[test]
    fn a_password_in_the_url_never_shows_in_a_dump() {
        let toml = "[state]\nredis_url = \"redis://user:hunter2@h:6379/0\"";
        let config = Config::from_toml(toml).unwrap();
        let dump = config.redacted_json().to_string();
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(dump.contains("redis://user:***@h:6379/0"), "{dump}");
    }

    #[test]
    fn the_redis_backend_refuses_the_embedded_vector_store() {
        let text = problems("backend = \"redis\"");
        assert!(text.contains("retrieval.qdrant_url"), "{text}");
        let toml = "[state]\nbackend = \"redis\"\n[retrieval]\nqdrant_url = \"http://q:6334\"";
        Config::from_toml(toml).unwrap();
    }

    #[test]
    fn a_ca_file_needs_rediss() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let toml = format!("redis_ca_file = {:?}", ca.display().to_string());
        assert!(problems(&toml).contains("needs TLS"), "{}", problems(&toml));
        let toml = format!("{toml}\nredis_url = \"rediss://h:6380\"");
        assert_eq!(problems(&toml), "");
        std::fs::write(&ca, "not pem").unwrap();
        assert!(problems(&toml).contains("holds no PEM certificate"));
    }
}
