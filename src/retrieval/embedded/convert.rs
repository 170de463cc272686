//! Conversions between Qdrant's gRPC messages (as generated in qdrant-client)
//! and the qdrant-edge engine's types, for the subset the embedded server
//! serves. Anything outside it is refused with INVALID_ARGUMENT naming what is
//! not supported, never silently ignored.

use std::collections::HashMap;

use qdrant_client::qdrant as grpc;
use qdrant_edge as edge;
use tonic::Status;

fn unsupported(what: &str) -> Status {
    Status::invalid_argument(format!(
        "the embedded Qdrant does not support {what}; use an external Qdrant (retrieval.qdrant_url)"
    ))
}

/// A point id.
pub fn point_id(id: Option<grpc::PointId>) -> Result<edge::PointId, Status> {
    match id.and_then(|id| id.point_id_options) {
        Some(grpc::point_id::PointIdOptions::Num(n)) => Ok(edge::PointId::NumId(n)),
        Some(grpc::point_id::PointIdOptions::Uuid(text)) => uuid::Uuid::parse_str(&text)
            .map(edge::PointId::Uuid)
            .map_err(|_| Status::invalid_argument(format!("point id {text:?} is not a UUID"))),
        None => Err(Status::invalid_argument("a point id is missing")),
    }
}

/// A point id, back to gRPC.
pub fn point_id_out(id: edge::PointId) -> grpc::PointId {
    let options = match id {
        edge::PointId::NumId(n) => grpc::point_id::PointIdOptions::Num(n),
        edge::PointId::Uuid(uuid) => grpc::point_id::PointIdOptions::Uuid(uuid.to_string()),
    };
    grpc::PointId {
        point_id_options: Some(options),
    }
}

/// A payload value as JSON.
pub fn value_to_json(value: grpc::Value) -> serde_json::Value {
    use grpc::value::Kind;
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => b.into(),
        Some(Kind::IntegerValue(i)) => i.into(),
        Some(Kind::DoubleValue(d)) => serde_json::Number::from_f64(d)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(s)) => s.into(),
        Some(Kind::ListValue(list)) => list.values.into_iter().map(value_to_json).collect(),
        Some(Kind::StructValue(object)) => serde_json::Value::Object(
            object
                .fields
                .into_iter()
                .map(|(k, v)| (k, value_to_json(v)))
                .collect(),
        ),
    }
}

/// JSON as a payload value.
pub fn json_to_value(json: serde_json::Value) -> grpc::Value {
    use grpc::value::Kind;
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(grpc::ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(grpc::Struct {
            fields: map
                .into_iter()
                .map(|(k, v)| (k, json_to_value(v)))
                .collect(),
        }),
    };
    grpc::Value { kind: Some(kind) }
}

/// A payload as a JSON object.
pub fn payload(payload: HashMap<String, grpc::Value>) -> serde_json::Value {
    serde_json::Value::Object(
        payload
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    )
}

/// An engine payload, back to gRPC.
pub fn payload_out(payload: Option<edge::Payload>) -> HashMap<String, grpc::Value> {
    payload
        .map(|p| {
            p.0.into_iter()
                .map(|(k, v)| (k, json_to_value(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// One vector of a point or a query.
fn vector(vector: grpc::Vector) -> Result<edge::Vector, Status> {
    use grpc::vector::Vector as V;
    #[allow(deprecated)]
    match (vector.vector, vector.indices) {
        (Some(V::Dense(dense)), _) => Ok(edge::Vector::from(dense.data)),
        (Some(V::Sparse(sparse)), _) => sparse_vector(sparse.indices, sparse.values),
        (None, Some(indices)) => sparse_vector(indices.data, vector.data),
        (None, None) => Ok(edge::Vector::from(vector.data)),
        (Some(_), _) => Err(unsupported("multi-vectors and document/image inputs")),
    }
}

fn sparse_vector(indices: Vec<u32>, values: Vec<f32>) -> Result<edge::Vector, Status> {
    edge::SparseVector::new(indices, values)
        .map(edge::Vector::from)
        .map_err(|err| Status::invalid_argument(format!("invalid sparse vector: {err}")))
}

/// A point's vectors.
pub fn vectors(vectors: Option<grpc::Vectors>) -> Result<edge::Vectors, Status> {
    use grpc::vectors::VectorsOptions;
    match vectors.and_then(|v| v.vectors_options) {
        Some(VectorsOptions::Vector(v)) => Ok(edge::Vectors::from(vector(v)?)),
        Some(VectorsOptions::Vectors(named)) => {
            let mut map = HashMap::new();
            for (name, v) in named.vectors {
                map.insert(name, vector(v)?);
            }
            Ok(edge::Vectors::from(map))
        }
        None => Err(Status::invalid_argument("a point has no vectors")),
    }
}

/// A filter.
pub fn filter(filter: grpc::Filter) -> Result<edge::Filter, Status> {
    let conditions = |list: Vec<grpc::Condition>| -> Result<Option<Vec<edge::Condition>>, Status> {
        if list.is_empty() {
            return Ok(None);
        }
        list.into_iter()
            .map(condition)
            .collect::<Result<_, _>>()
            .map(Some)
    };
    if filter.min_should.is_some() {
        return Err(unsupported("min_should filters"));
    }
    Ok(edge::Filter {
        should: conditions(filter.should)?,
        min_should: None,
        must: conditions(filter.must)?,
        must_not: conditions(filter.must_not)?,
    })
}

fn condition(condition: grpc::Condition) -> Result<edge::Condition, Status> {
    use grpc::condition::ConditionOneOf;
    match condition.condition_one_of {
        Some(ConditionOneOf::Field(field)) => field_condition(field),
        Some(ConditionOneOf::HasId(has_id)) => {
            let ids: Vec<edge::PointId> = has_id
                .has_id
                .into_iter()
                .map(|id| point_id(Some(id)))
                .collect::<Result<_, _>>()?;
            Ok(edge::Condition::HasId(ids.into_iter().collect()))
        }
        Some(ConditionOneOf::Filter(inner)) => Ok(edge::Condition::Filter(filter(inner)?)),
        Some(_) => Err(unsupported(
            "this filter condition (supported: field match, has_id, nested filter)",
        )),
        None => Err(Status::invalid_argument("an empty filter condition")),
    }
}

fn field_condition(field: grpc::FieldCondition) -> Result<edge::Condition, Status> {
    use grpc::r#match::MatchValue;
    let key = edge::JsonPath::try_from(field.key.as_str())
        .map_err(|_| Status::invalid_argument(format!("invalid field key {:?}", field.key)))?;
    let value = match field.r#match.and_then(|m| m.match_value) {
        Some(MatchValue::Keyword(s)) => edge::ValueVariants::String(s),
        Some(MatchValue::Integer(i)) => edge::ValueVariants::Integer(i),
        Some(MatchValue::Boolean(b)) => edge::ValueVariants::Bool(b),
        _ => {
            return Err(unsupported(
                "field conditions other than keyword, integer or boolean matches",
            ));
        }
    };
    Ok(edge::Condition::Field(edge::FieldCondition::new_match(
        key,
        edge::Match::new_value(value),
    )))
}

/// Whether to return payloads.
pub fn with_payload(
    selector: Option<grpc::WithPayloadSelector>,
) -> Result<edge::WithPayloadInterface, Status> {
    use grpc::with_payload_selector::SelectorOptions;
    match selector.and_then(|s| s.selector_options) {
        None => Ok(edge::WithPayloadInterface::Bool(false)),
        Some(SelectorOptions::Enable(enable)) => Ok(edge::WithPayloadInterface::Bool(enable)),
        Some(_) => Err(unsupported("payload include/exclude selectors")),
    }
}

/// A query: nearest to a dense or sparse vector (with `using`), or RRF fusion.
pub fn query(query: grpc::Query, using: Option<String>) -> Result<edge::ScoringQuery, Status> {
    use grpc::query::Variant;
    use grpc::vector_input::Variant as Input;
    match query.variant {
        Some(Variant::Nearest(input)) => {
            let vector: edge::VectorInternal = match input.variant {
                Some(Input::Dense(dense)) => edge::VectorInternal::from(dense.data),
                Some(Input::Sparse(sparse)) => edge::VectorInternal::from(
                    edge::SparseVector::new(sparse.indices, sparse.values).map_err(|err| {
                        Status::invalid_argument(format!("invalid sparse vector: {err}"))
                    })?,
                ),
                _ => {
                    return Err(unsupported(
                        "nearest queries other than dense or sparse vectors",
                    ));
                }
            };
            Ok(edge::ScoringQuery::Vector(edge::QueryEnum::Nearest(
                edge::NamedQuery {
                    query: vector,
                    using,
                },
            )))
        }
        Some(Variant::Fusion(fusion)) if fusion == grpc::Fusion::Rrf as i32 => {
            Ok(edge::ScoringQuery::Fusion(edge::Fusion::Rrf {
                k: DEFAULT_RRF_K,
                weights: None,
            }))
        }
        Some(Variant::Rrf(rrf)) => Ok(edge::ScoringQuery::Fusion(edge::Fusion::Rrf {
            k: rrf.k.map_or(DEFAULT_RRF_K, |k| k as usize),
            weights: None,
        })),
        _ => Err(unsupported(
            "this query (supported: nearest dense/sparse, RRF fusion)",
        )),
    }
}

/// Qdrant's default RRF constant (its server's `DEFAULT_RRF_K`), so fused scores
/// match an external Qdrant's.
const DEFAULT_RRF_K: usize = 2;

/// A prefetch.
pub fn prefetch(prefetch: grpc::PrefetchQuery) -> Result<edge::Prefetch, Status> {
    if prefetch.lookup_from.is_some() {
        return Err(unsupported("lookup_from"));
    }
    Ok(edge::Prefetch {
        prefetches: prefetch
            .prefetch
            .into_iter()
            .map(self::prefetch)
            .collect::<Result<_, _>>()?,
        query: prefetch
            .query
            .map(|q| query(q, prefetch.using))
            .transpose()?,
        limit: prefetch.limit.map_or(10, |l| l as usize),
        params: None,
        filter: prefetch.filter.map(filter).transpose()?,
        score_threshold: prefetch.score_threshold.map(ordered_float::OrderedFloat),
    })
}
