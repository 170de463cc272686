//! The Qdrant gRPC services of the embedded store, over the engine: the subset
//! agentd uses is served faithfully to Qdrant's semantics, every other method
//! answers UNIMPLEMENTED naming itself. Engine calls run on blocking threads.

use std::sync::Arc;
use std::time::Instant;

use qdrant_client::qdrant as grpc;
use qdrant_client::qdrant::collections_server::Collections;
use qdrant_client::qdrant::points_server::Points;
use qdrant_client::qdrant::qdrant_server::Qdrant;
use qdrant_edge as edge;
use tonic::{Request, Response, Status};

use super::convert;
use super::engine::{Collection, CollectionSpec, DenseSpec, Engine, EngineError};

/// The services, sharing one engine.
#[derive(Clone, Debug)]
pub struct EmbeddedQdrant {
    engine: Arc<Engine>,
}

impl EmbeddedQdrant {
    /// The services over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>, Status> {
        self.engine
            .get(name)
            .ok_or_else(|| Status::not_found(format!("Collection `{name}` doesn't exist!")))
    }
}

fn not_served(method: &str) -> Status {
    Status::unimplemented(format!(
        "qdrant.{method} is not served by agentd's embedded Qdrant; use an external Qdrant \
         (retrieval.qdrant_url) for it"
    ))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Status::internal(format!("engine task failed: {err}")))?
}

fn engine_error(err: EngineError) -> Status {
    match err {
        EngineError::Exists(_) => Status::already_exists(err.to_string()),
        EngineError::Invalid(_) => Status::invalid_argument(err.to_string()),
        EngineError::Storage(_) => Status::internal(err.to_string()),
    }
}

fn operation_error(err: edge::OperationError) -> Status {
    match err {
        edge::OperationError::ServiceError { .. }
        | edge::OperationError::InconsistentStorage { .. }
        | edge::OperationError::OutOfMemory { .. } => Status::internal(err.to_string()),
        edge::OperationError::Cancelled { .. } => Status::cancelled(err.to_string()),
        edge::OperationError::Timeout { .. } => Status::deadline_exceeded(err.to_string()),
        _ => Status::invalid_argument(err.to_string()),
    }
}

fn seconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

fn completed(started: Instant) -> grpc::PointsOperationResponse {
    grpc::PointsOperationResponse {
        result: Some(grpc::UpdateResult {
            operation_id: None,
            status: grpc::UpdateStatus::Completed as i32,
        }),
        time: seconds(started),
        usage: None,
    }
}

fn distance_name(distance: i32) -> Result<&'static str, Status> {
    match grpc::Distance::try_from(distance) {
        Ok(grpc::Distance::Cosine) => Ok("cosine"),
        Ok(grpc::Distance::Dot) => Ok("dot"),
        Ok(grpc::Distance::Euclid) => Ok("euclid"),
        Ok(grpc::Distance::Manhattan) => Ok("manhattan"),
        _ => Err(Status::invalid_argument(format!(
            "unknown distance {distance}"
        ))),
    }
}

fn distance_value(name: &str) -> i32 {
    match name {
        "dot" => grpc::Distance::Dot as i32,
        "euclid" => grpc::Distance::Euclid as i32,
        "manhattan" => grpc::Distance::Manhattan as i32,
        _ => grpc::Distance::Cosine as i32,
    }
}

/// The vectors of a CreateCollection request.
fn spec(request: &grpc::CreateCollection) -> Result<CollectionSpec, Status> {
    use grpc::vectors_config::Config;
    let mut spec = CollectionSpec::default();
    let dense = |params: &grpc::VectorParams| -> Result<DenseSpec, Status> {
        if params.multivector_config.is_some() {
            return Err(Status::invalid_argument(
                "the embedded Qdrant does not support multi-vectors",
            ));
        }
        Ok(DenseSpec {
            size: params.size as usize,
            distance: distance_name(params.distance)?.to_owned(),
        })
    };
    match request
        .vectors_config
        .as_ref()
        .and_then(|c| c.config.as_ref())
    {
        Some(Config::Params(params)) => {
            spec.dense.insert(String::new(), dense(params)?);
        }
        Some(Config::ParamsMap(map)) => {
            for (name, params) in &map.map {
                spec.dense.insert(name.clone(), dense(params)?);
            }
        }
        None => {}
    }
    if let Some(sparse) = &request.sparse_vectors_config {
        for (name, params) in &sparse.map {
            let idf = params.modifier == Some(grpc::Modifier::Idf as i32);
            spec.sparse.insert(name.clone(), idf);
        }
    }
    Ok(spec)
}

fn collection_info(collection: &Collection) -> Result<grpc::CollectionInfo, Status> {
    let points = collection
        .shard
        .count(edge::CountRequest {
            filter: None,
            exact: true,
        })
        .map_err(operation_error)?;
    let vectors_config = (!collection.spec.dense.is_empty()).then(|| grpc::VectorsConfig {
        config: Some(grpc::vectors_config::Config::ParamsMap(
            grpc::VectorParamsMap {
                map: collection
                    .spec
                    .dense
                    .iter()
                    .map(|(name, dense)| {
                        (
                            name.clone(),
                            grpc::VectorParams {
                                size: dense.size as u64,
                                distance: distance_value(&dense.distance),
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
            },
        )),
    });
    let sparse_vectors_config = Some(grpc::SparseVectorConfig {
        map: collection
            .spec
            .sparse
            .iter()
            .map(|(name, idf)| {
                let modifier = idf.then_some(grpc::Modifier::Idf as i32);
                (
                    name.clone(),
                    grpc::SparseVectorParams {
                        index: None,
                        modifier,
                    },
                )
            })
            .collect(),
    });
    Ok(grpc::CollectionInfo {
        status: grpc::CollectionStatus::Green as i32,
        segments_count: 1,
        points_count: Some(points as u64),
        config: Some(grpc::CollectionConfig {
            params: Some(grpc::CollectionParams {
                shard_number: 1,
                vectors_config,
                sparse_vectors_config,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[tonic::async_trait]
impl Qdrant for EmbeddedQdrant {
    async fn health_check(
        &self,
        _request: Request<grpc::HealthCheckRequest>,
    ) -> Result<Response<grpc::HealthCheckReply>, Status> {
        Ok(Response::new(grpc::HealthCheckReply {
            title: "agentd embedded qdrant (qdrant-edge 0.7.0)".to_owned(),
            version: "0.7.0".to_owned(),
            commit: None,
        }))
    }
}

#[tonic::async_trait]
impl Collections for EmbeddedQdrant {
    async fn get(
        &self,
        request: Request<grpc::GetCollectionInfoRequest>,
    ) -> Result<Response<grpc::GetCollectionInfoResponse>, Status> {
        let started = Instant::now();
        let collection = self.collection(&request.into_inner().collection_name)?;
        let info = blocking(move || collection_info(&collection)).await?;
        Ok(Response::new(grpc::GetCollectionInfoResponse {
            result: Some(info),
            time: seconds(started),
        }))
    }

    async fn list(
        &self,
        _request: Request<grpc::ListCollectionsRequest>,
    ) -> Result<Response<grpc::ListCollectionsResponse>, Status> {
        let started = Instant::now();
        let collections = self
            .engine
            .names()
            .into_iter()
            .map(|name| grpc::CollectionDescription { name })
            .collect();
        Ok(Response::new(grpc::ListCollectionsResponse {
            collections,
            time: seconds(started),
        }))
    }

    async fn create(
        &self,
        request: Request<grpc::CreateCollection>,
    ) -> Result<Response<grpc::CollectionOperationResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let spec = spec(&request)?;
        let engine = self.engine.clone();
        blocking(move || {
            engine
                .create(&request.collection_name, spec)
                .map_err(engine_error)
        })
        .await?;
        Ok(Response::new(grpc::CollectionOperationResponse {
            result: true,
            time: seconds(started),
        }))
    }

    async fn delete(
        &self,
        request: Request<grpc::DeleteCollection>,
    ) -> Result<Response<grpc::CollectionOperationResponse>, Status> {
        let started = Instant::now();
        let name = request.into_inner().collection_name;
        let engine = self.engine.clone();
        let deleted = blocking(move || engine.delete(&name).map_err(engine_error)).await?;
        Ok(Response::new(grpc::CollectionOperationResponse {
            result: deleted,
            time: seconds(started),
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<grpc::CollectionExistsRequest>,
    ) -> Result<Response<grpc::CollectionExistsResponse>, Status> {
        let started = Instant::now();
        let exists = self
            .engine
            .get(&request.into_inner().collection_name)
            .is_some();
        Ok(Response::new(grpc::CollectionExistsResponse {
            result: Some(grpc::CollectionExists { exists }),
            time: seconds(started),
        }))
    }

    async fn update(
        &self,
        _request: Request<grpc::UpdateCollection>,
    ) -> Result<Response<grpc::CollectionOperationResponse>, Status> {
        Err(not_served("Collections/Update"))
    }

    async fn update_aliases(
        &self,
        _request: Request<grpc::ChangeAliases>,
    ) -> Result<Response<grpc::CollectionOperationResponse>, Status> {
        Err(not_served("Collections/UpdateAliases"))
    }

    async fn list_collection_aliases(
        &self,
        _request: Request<grpc::ListCollectionAliasesRequest>,
    ) -> Result<Response<grpc::ListAliasesResponse>, Status> {
        Err(not_served("Collections/ListCollectionAliases"))
    }

    async fn list_aliases(
        &self,
        _request: Request<grpc::ListAliasesRequest>,
    ) -> Result<Response<grpc::ListAliasesResponse>, Status> {
        Err(not_served("Collections/ListAliases"))
    }

    async fn collection_cluster_info(
        &self,
        _request: Request<grpc::CollectionClusterInfoRequest>,
    ) -> Result<Response<grpc::CollectionClusterInfoResponse>, Status> {
        Err(not_served("Collections/CollectionClusterInfo"))
    }

    async fn update_collection_cluster_setup(
        &self,
        _request: Request<grpc::UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<grpc::UpdateCollectionClusterSetupResponse>, Status> {
        Err(not_served("Collections/UpdateCollectionClusterSetup"))
    }

    async fn create_shard_key(
        &self,
        _request: Request<grpc::CreateShardKeyRequest>,
    ) -> Result<Response<grpc::CreateShardKeyResponse>, Status> {
        Err(not_served("Collections/CreateShardKey"))
    }

    async fn delete_shard_key(
        &self,
        _request: Request<grpc::DeleteShardKeyRequest>,
    ) -> Result<Response<grpc::DeleteShardKeyResponse>, Status> {
        Err(not_served("Collections/DeleteShardKey"))
    }

    async fn list_shard_keys(
        &self,
        _request: Request<grpc::ListShardKeysRequest>,
    ) -> Result<Response<grpc::ListShardKeysResponse>, Status> {
        Err(not_served("Collections/ListShardKeys"))
    }
}

#[tonic::async_trait]
impl Points for EmbeddedQdrant {
    async fn upsert(
        &self,
        request: Request<grpc::UpsertPoints>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let collection = self.collection(&request.collection_name)?;
        let points = request
            .points
            .into_iter()
            .map(|point| {
                Ok(edge::PointStruct::new(
                    convert::point_id(point.id)?,
                    convert::vectors(point.vectors)?,
                    convert::payload(point.payload),
                )
                .into())
            })
            .collect::<Result<Vec<edge::PointStructPersisted>, Status>>()?;
        blocking(move || {
            collection
                .write(edge::UpdateOperation::PointOperation(
                    edge::PointOperations::UpsertPoints(edge::PointInsertOperations::PointsList(
                        points,
                    )),
                ))
                .map_err(operation_error)
        })
        .await?;
        Ok(Response::new(completed(started)))
    }

    async fn delete(
        &self,
        request: Request<grpc::DeletePoints>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        use grpc::points_selector::PointsSelectorOneOf;
        let started = Instant::now();
        let request = request.into_inner();
        let collection = self.collection(&request.collection_name)?;
        let operation = match request.points.and_then(|p| p.points_selector_one_of) {
            Some(PointsSelectorOneOf::Points(list)) => edge::PointOperations::DeletePoints {
                ids: list
                    .ids
                    .into_iter()
                    .map(|id| convert::point_id(Some(id)))
                    .collect::<Result<_, _>>()?,
            },
            Some(PointsSelectorOneOf::Filter(filter)) => {
                edge::PointOperations::DeletePointsByFilter(convert::filter(filter)?)
            }
            None => return Err(Status::invalid_argument("points selector is missing")),
        };
        blocking(move || {
            collection
                .write(edge::UpdateOperation::PointOperation(operation))
                .map_err(operation_error)
        })
        .await?;
        Ok(Response::new(completed(started)))
    }

    async fn create_field_index(
        &self,
        request: Request<grpc::CreateFieldIndexCollection>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let collection = self.collection(&request.collection_name)?;
        let schema = match request.field_type.map(grpc::FieldType::try_from) {
            Some(Ok(grpc::FieldType::Keyword)) => edge::PayloadSchemaType::Keyword,
            Some(Ok(grpc::FieldType::Integer)) => edge::PayloadSchemaType::Integer,
            Some(Ok(grpc::FieldType::Bool)) => edge::PayloadSchemaType::Bool,
            _ => {
                return Err(Status::invalid_argument(
                    "the embedded Qdrant indexes keyword, integer and bool fields only",
                ));
            }
        };
        let field = edge::JsonPath::try_from(request.field_name.as_str()).map_err(|_| {
            Status::invalid_argument(format!("invalid field name {:?}", request.field_name))
        })?;
        blocking(move || {
            collection
                .write(edge::UpdateOperation::FieldIndexOperation(
                    edge::FieldIndexOperations::CreateIndex(edge::CreateIndex {
                        field_name: field,
                        field_schema: Some(edge::PayloadFieldSchema::FieldType(schema)),
                    }),
                ))
                .map_err(operation_error)
        })
        .await?;
        Ok(Response::new(completed(started)))
    }

    async fn count(
        &self,
        request: Request<grpc::CountPoints>,
    ) -> Result<Response<grpc::CountResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let collection = self.collection(&request.collection_name)?;
        let filter = request.filter.map(convert::filter).transpose()?;
        let count = blocking(move || {
            collection
                .shard
                .count(edge::CountRequest {
                    filter,
                    exact: true,
                })
                .map_err(operation_error)
        })
        .await?;
        Ok(Response::new(grpc::CountResponse {
            result: Some(grpc::CountResult {
                count: count as u64,
            }),
            time: seconds(started),
            usage: None,
        }))
    }

    async fn scroll(
        &self,
        request: Request<grpc::ScrollPoints>,
    ) -> Result<Response<grpc::ScrollResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let collection = self.collection(&request.collection_name)?;
        let scroll = edge::ScrollRequest {
            offset: request
                .offset
                .map(|id| convert::point_id(Some(id)))
                .transpose()?,
            limit: request.limit.map(|l| l as usize),
            filter: request.filter.map(convert::filter).transpose()?,
            with_payload: Some(convert::with_payload(request.with_payload)?),
            with_vector: edge::WithVector::Bool(false),
            order_by: None,
        };
        let (records, next) =
            blocking(move || collection.shard.scroll(scroll).map_err(operation_error)).await?;
        Ok(Response::new(grpc::ScrollResponse {
            next_page_offset: next.map(convert::point_id_out),
            result: records
                .into_iter()
                .map(|record| grpc::RetrievedPoint {
                    id: Some(convert::point_id_out(record.id)),
                    payload: convert::payload_out(record.payload),
                    ..Default::default()
                })
                .collect(),
            time: seconds(started),
            usage: None,
        }))
    }

    async fn query(
        &self,
        request: Request<grpc::QueryPoints>,
    ) -> Result<Response<grpc::QueryResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let collection = self.collection(&request.collection_name)?;
        let query = edge::QueryRequest {
            prefetches: request
                .prefetch
                .into_iter()
                .map(convert::prefetch)
                .collect::<Result<_, _>>()?,
            query: request
                .query
                .map(|q| convert::query(q, request.using))
                .transpose()?,
            filter: request.filter.map(convert::filter).transpose()?,
            score_threshold: request.score_threshold.map(ordered_float::OrderedFloat),
            limit: request.limit.map_or(10, |l| l as usize),
            offset: request.offset.map_or(0, |o| o as usize),
            params: None,
            with_vector: edge::WithVector::Bool(false),
            with_payload: convert::with_payload(request.with_payload)?,
        };
        let points =
            blocking(move || collection.shard.query(query).map_err(operation_error)).await?;
        Ok(Response::new(grpc::QueryResponse {
            result: points
                .into_iter()
                .map(|point| grpc::ScoredPoint {
                    id: Some(convert::point_id_out(point.id)),
                    payload: convert::payload_out(point.payload),
                    score: point.score,
                    version: point.version,
                    ..Default::default()
                })
                .collect(),
            time: seconds(started),
            usage: None,
        }))
    }

    async fn get(
        &self,
        _request: Request<grpc::GetPoints>,
    ) -> Result<Response<grpc::GetResponse>, Status> {
        Err(not_served("Points/Get"))
    }

    async fn update_vectors(
        &self,
        _request: Request<grpc::UpdatePointVectors>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/UpdateVectors"))
    }

    async fn delete_vectors(
        &self,
        _request: Request<grpc::DeletePointVectors>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/DeleteVectors"))
    }

    async fn set_payload(
        &self,
        _request: Request<grpc::SetPayloadPoints>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/SetPayload"))
    }

    async fn overwrite_payload(
        &self,
        _request: Request<grpc::SetPayloadPoints>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/OverwritePayload"))
    }

    async fn delete_payload(
        &self,
        _request: Request<grpc::DeletePayloadPoints>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/DeletePayload"))
    }

    async fn clear_payload(
        &self,
        _request: Request<grpc::ClearPayloadPoints>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/ClearPayload"))
    }

    async fn delete_field_index(
        &self,
        _request: Request<grpc::DeleteFieldIndexCollection>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/DeleteFieldIndex"))
    }

    async fn create_vector_name(
        &self,
        _request: Request<grpc::CreateVectorNameRequest>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/CreateVectorName"))
    }

    async fn delete_vector_name(
        &self,
        _request: Request<grpc::DeleteVectorNameRequest>,
    ) -> Result<Response<grpc::PointsOperationResponse>, Status> {
        Err(not_served("Points/DeleteVectorName"))
    }

    async fn search(
        &self,
        _request: Request<grpc::SearchPoints>,
    ) -> Result<Response<grpc::SearchResponse>, Status> {
        Err(not_served("Points/Search"))
    }

    async fn search_batch(
        &self,
        _request: Request<grpc::SearchBatchPoints>,
    ) -> Result<Response<grpc::SearchBatchResponse>, Status> {
        Err(not_served("Points/SearchBatch"))
    }

    async fn search_groups(
        &self,
        _request: Request<grpc::SearchPointGroups>,
    ) -> Result<Response<grpc::SearchGroupsResponse>, Status> {
        Err(not_served("Points/SearchGroups"))
    }

    async fn recommend(
        &self,
        _request: Request<grpc::RecommendPoints>,
    ) -> Result<Response<grpc::RecommendResponse>, Status> {
        Err(not_served("Points/Recommend"))
    }

    async fn recommend_batch(
        &self,
        _request: Request<grpc::RecommendBatchPoints>,
    ) -> Result<Response<grpc::RecommendBatchResponse>, Status> {
        Err(not_served("Points/RecommendBatch"))
    }

    async fn recommend_groups(
        &self,
        _request: Request<grpc::RecommendPointGroups>,
    ) -> Result<Response<grpc::RecommendGroupsResponse>, Status> {
        Err(not_served("Points/RecommendGroups"))
    }

    async fn discover(
        &self,
        _request: Request<grpc::DiscoverPoints>,
    ) -> Result<Response<grpc::DiscoverResponse>, Status> {
        Err(not_served("Points/Discover"))
    }

    async fn discover_batch(
        &self,
        _request: Request<grpc::DiscoverBatchPoints>,
    ) -> Result<Response<grpc::DiscoverBatchResponse>, Status> {
        Err(not_served("Points/DiscoverBatch"))
    }

    async fn update_batch(
        &self,
        _request: Request<grpc::UpdateBatchPoints>,
    ) -> Result<Response<grpc::UpdateBatchResponse>, Status> {
        Err(not_served("Points/UpdateBatch"))
    }

    async fn query_batch(
        &self,
        _request: Request<grpc::QueryBatchPoints>,
    ) -> Result<Response<grpc::QueryBatchResponse>, Status> {
        Err(not_served("Points/QueryBatch"))
    }

    async fn query_groups(
        &self,
        _request: Request<grpc::QueryPointGroups>,
    ) -> Result<Response<grpc::QueryGroupsResponse>, Status> {
        Err(not_served("Points/QueryGroups"))
    }

    async fn facet(
        &self,
        _request: Request<grpc::FacetCounts>,
    ) -> Result<Response<grpc::FacetResponse>, Status> {
        Err(not_served("Points/Facet"))
    }

    async fn search_matrix_pairs(
        &self,
        _request: Request<grpc::SearchMatrixPoints>,
    ) -> Result<Response<grpc::SearchMatrixPairsResponse>, Status> {
        Err(not_served("Points/SearchMatrixPairs"))
    }

    async fn search_matrix_offsets(
        &self,
        _request: Request<grpc::SearchMatrixPoints>,
    ) -> Result<Response<grpc::SearchMatrixOffsetsResponse>, Status> {
        Err(not_served("Points/SearchMatrixOffsets"))
    }
}
