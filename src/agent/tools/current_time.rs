//! `current_time`: the current date and time, in UTC or a named IANA time zone
//! (time zone data is bundled, so the answer does not depend on the host).

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;

use super::{Tool, ToolContext, ToolError, ToolOutput};

/// The built-in clock tool.
#[derive(Debug)]
pub struct CurrentTime;

#[async_trait::async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "Returns the current date, time and weekday, in UTC or in the given IANA time zone."
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA time zone name, e.g. \"Europe/Paris\". Defaults to UTC."
                }
            },
            "additionalProperties": false
        })
    }

    async fn execute(
        &self,
        context: &ToolContext,
        arguments: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let name = arguments["timezone"].as_str().unwrap_or("UTC");
        let zone = TimeZone::get(name).map_err(|_| {
            ToolError::Failed(format!(
                "unknown time zone {name:?}: use an IANA name such as \"Europe/Paris\""
            ))
        })?;
        let now = Timestamp::try_from(context.clock.wall())
            .map_err(|err| ToolError::Failed(format!("the clock is out of range: {err}")))?
            .to_zoned_datetime(zone);
        Ok(json!({
            "timezone": name,
            "datetime": now.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            "weekday": now.strftime("%A").to_string(),
        })
        .to_string()
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::ids::TenantId;

    /// 2026-11-23T10:00:00Z, a Monday.
    fn context() -> ToolContext {
        let monday =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_428_000);
        ToolContext {
            tenant: TenantId::default_tenant(),
            collections: Vec::new(),
            clock: Clock::manual(monday),
        }
    }

    #[tokio::test]
    async fn answers_in_the_requested_zone_from_the_clock() {
        let reply = CurrentTime
            .execute(&context(), json!({"timezone": "Asia/Kolkata"}))
            .await
            .unwrap();
        let reply: serde_json::Value = serde_json::from_str(&reply.content).unwrap();
        assert_eq!(reply["datetime"], "2026-11-23T15:30:00+05:30");
        assert_eq!(reply["weekday"], "Monday");
    }

    #[tokio::test]
    async fn defaults_to_utc_and_rejects_unknown_zones() {
        let reply = CurrentTime.execute(&context(), json!({})).await.unwrap();
        assert!(
            reply.content.contains("2026-11-23T10:00:00+00:00"),
            "{reply:?}"
        );
        let err = CurrentTime
            .execute(&context(), json!({"timezone": "Mars/Olympus"}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }
}
