//! The `qdrant.Points` service of the embedded store.

use std::time::Instant;

use qdrant_client::qdrant as grpc;
use qdrant_client::qdrant::points_server::Points;
use qdrant_edge as edge;
use tonic::{Request, Response, Status};

use super::super::convert;
use super::{EmbeddedQdrant, blocking, completed, not_served, operation_error, seconds};

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
