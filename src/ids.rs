//! The identifiers the modules share, each validated once by a fallible
//! constructor: holding one means it is valid. A leaf: it depends on nothing
//! else in agentd.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value is not a valid identifier, for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

/// `value` when it is `min..=max` bytes, each accepted by `allowed`.
fn checked(
    value: String,
    max: usize,
    allowed: fn(u8) -> bool,
    rule: &str,
) -> Result<String, InvalidId> {
    if (1..=max).contains(&value.len()) && value.bytes().all(allowed) {
        Ok(value)
    } else {
        Err(InvalidId(format!("must be {rule}")))
    }
}

fn word_or_dot(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidId;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::try_from(value.to_owned())
            }
        }
    };
}

string_id! {
    /// A tenant: 1 to 64 characters from `[A-Za-z0-9_.-]`.
    TenantId
}

impl TenantId {
    /// The tenant of every call when auth is disabled.
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        checked(
            value,
            64,
            word_or_dot,
            "1 to 64 characters from [A-Za-z0-9_.-]",
        )
        .map(Self)
    }
}

string_id! {
    /// A conversation: 1 to 128 characters from `[A-Za-z0-9_.-]`.
    SessionId
}

impl SessionId {
    /// A new random, time-ordered id (UUIDv7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl TryFrom<String> for SessionId {
    type Error = InvalidId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        checked(
            value,
            128,
            word_or_dot,
            "1 to 128 characters from [A-Za-z0-9_.-]",
        )
        .map(Self)
    }
}

string_id! {
    /// One turn, as the server named it when the turn started: a UUIDv7, so ids
    /// sort by time. It keys whatever must happen once per turn (usage
    /// accounting, feedback); the caller's `x-request-id` is for correlation only.
    TurnId
}

impl TurnId {
    /// A new turn id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl TryFrom<String> for TurnId {
    type Error = InvalidId;

    /// A turn id as the server writes it: a version 7 UUID, kept in its
    /// hyphenated lowercase form whatever form it was given in.
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match uuid::Uuid::try_parse(&value) {
            Ok(uuid) if uuid.get_version_num() == 7 => Ok(Self(uuid.hyphenated().to_string())),
            _ => Err(InvalidId("must be a version 7 UUID".to_owned())),
        }
    }
}

string_id! {
    /// A knowledge collection: 1 to 64 characters from `[A-Za-z0-9_-]`.
    CollectionName
}

impl TryFrom<String> for CollectionName {
    type Error = InvalidId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        checked(value, 64, word, "1 to 64 characters from [A-Za-z0-9_-]").map(Self)
    }
}

string_id! {
    /// A document, as its owner names it: 1 to 512 bytes, not blank, without
    /// control characters.
    DocId
}

impl TryFrom<String> for DocId {
    type Error = InvalidId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid =
            !value.trim().is_empty() && value.len() <= 512 && !value.chars().any(char::is_control);
        if valid {
            Ok(Self(value))
        } else {
            Err(InvalidId(
                "must be 1 to 512 bytes with no control characters".to_owned(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_validated() {
        assert!(TenantId::try_from("acme-1.eu_west").is_ok());
        for bad in ["", "a b", "tenant/other", &"x".repeat(65)] {
            assert!(TenantId::try_from(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn session_ids_are_validated() {
        assert!(SessionId::try_from("abc-123_X.y").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(SessionId::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(SessionId::try_from(SessionId::generate().to_string()).is_ok());
    }

    #[test]
    fn collection_names_are_validated() {
        assert!(CollectionName::try_from("hr_docs-2").is_ok());
        for bad in ["", "a.b", "a b", "ünï", &"x".repeat(65)] {
            assert!(CollectionName::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn doc_ids_are_validated() {
        assert!(DocId::try_from("people/vacation policy.md").is_ok());
        for bad in ["", "  ", "a\nb", &"x".repeat(513)] {
            assert!(DocId::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn turn_ids_are_time_ordered_uuids() {
        let first = TurnId::generate();
        let second = TurnId::generate();
        assert!(first < second, "{first} !< {second}");
        assert_eq!(TurnId::try_from(first.to_string()).unwrap(), first);
        let shouted = first.as_str().to_uppercase();
        assert_eq!(TurnId::try_from(shouted).unwrap(), first);
        assert!(TurnId::try_from("turn-1").is_err());
        let v4 = "2c5ea4c0-4067-41de-9b3f-ee7e04e6a9a2";
        assert!(TurnId::try_from(v4).is_err());
    }

    #[test]
    fn ids_round_trip_through_serde_and_are_checked_on_the_way_in() {
        let id = CollectionName::try_from("docs").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"docs\"");
        assert_eq!(serde_json::from_str::<CollectionName>(&json).unwrap(), id);
        assert!(serde_json::from_str::<CollectionName>("\"a b\"").is_err());
    }
}
