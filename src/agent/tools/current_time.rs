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
        _context: &ToolContext,
        arguments: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let name = arguments["timezone"].as_str().unwrap_or("UTC");
        let zone = TimeZone::get(name).map_err(|_| {
            ToolError::Failed(format!(
                "unknown time zone {name:?}: use an IANA name such as \"Europe/Paris\""
            ))
        })?;
        let now = Timestamp::now().to_zoned_datetime(zone);
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
    use crate::identity::TenantId;

    fn context() -> ToolContext {
        ToolContext {
            tenant: TenantId::default_tenant(),
            collections: Vec::new(),
        }
    }

    #[tokio::test]
    async fn answers_in_the_requested_zone() {
        let before = Timestamp::now();
        let reply = CurrentTime
            .execute(&context(), json!({"timezone": "Asia/Kolkata"}))
            .await
            .unwrap();
        let reply: serde_json::Value = serde_json::from_str(&reply.content).unwrap();
        let datetime = reply["datetime"].as_str().unwrap();
        assert!(datetime.ends_with("+05:30"), "{datetime}");
        let parsed: Timestamp = datetime.parse().unwrap();
        assert!(
            parsed.as_second() >= before.as_second()
                && parsed.as_second() <= before.as_second() + 5
        );
    }

    #[tokio::test]
    async fn defaults_to_utc_and_rejects_unknown_zones() {
        let reply = CurrentTime.execute(&context(), json!({})).await.unwrap();
        assert!(reply.content.contains("+00:00"), "{reply:?}");
        let err = CurrentTime
            .execute(&context(), json!({"timezone": "Mars/Olympus"}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }
}
