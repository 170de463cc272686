//! The `qdrant.Collections` service of the embedded store.

use std::time::Instant;

use qdrant_client::qdrant as grpc;
use qdrant_client::qdrant::collections_server::Collections;
use qdrant_edge as edge;
use tonic::{Request, Response, Status};

use super::super::engine::{Collection, CollectionSpec, DenseSpec};
use super::{EmbeddedQdrant, blocking, engine_error, not_served, operation_error, seconds};

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
    // As Qdrant answers: a map of the named dense vectors, empty for a
    // sparse-only collection (not an absent config).
    let vectors_config = Some(grpc::VectorsConfig {
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
