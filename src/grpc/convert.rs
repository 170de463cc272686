//! Conversions between domain values and protobuf well-known types.

use std::time::{Duration, SystemTime};

use prost_types::value::Kind;

/// A JSON value as a `google.protobuf.Value`.
pub fn json_to_value(json: &serde_json::Value) -> prost_types::Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), json_to_value(value)))
            .collect(),
    }
}

/// A duration as a `google.protobuf.Duration`, saturating at its range.
pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or_default(),
    }
}

/// A wall-clock time as a `google.protobuf.Timestamp`.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_become_structs() {
        let json = serde_json::json!({"a": {"b": [1, "x", null, true]}});
        let serde_json::Value::Object(map) = &json else {
            unreachable!()
        };
        let value = json_to_struct(map);
        let Some(Kind::StructValue(inner)) = &value.fields["a"].kind else {
            panic!("not a struct: {value:?}")
        };
        let Some(Kind::ListValue(list)) = &inner.fields["b"].kind else {
            panic!("not a list: {inner:?}")
        };
        assert_eq!(list.values.len(), 4);
        assert_eq!(list.values[0].kind, Some(Kind::NumberValue(1.0)));
    }
}
