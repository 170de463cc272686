//! The embedded engine: one qdrant-edge shard per collection, each in its own
//! directory under `<data_dir>/qdrant/collections/<name>/`, with the collection's
//! vector configuration beside it in `spec.json` (written last, so a directory
//! without it is a creation that never finished and is removed at start).
//!
//! Every method blocks (disk and CPU): call them from a blocking thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use qdrant_edge as edge;
use serde::{Deserialize, Serialize};

/// A dense vector's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenseSpec {
    /// Dimensions.
    pub size: usize,
    /// "cosine", "dot", "euclid" or "manhattan".
    pub distance: String,
}

/// A collection's vectors, as created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSpec {
    /// Named dense vectors.
    pub dense: BTreeMap<String, DenseSpec>,
    /// Named sparse vectors: whether each has the IDF modifier.
    pub sparse: BTreeMap<String, bool>,
}

/// One collection.
#[derive(Debug)]
pub struct Collection {
    /// The engine shard; read through it directly, write through [`Collection::write`].
    pub shard: Shard,
    /// Its vectors.
    pub spec: CollectionSpec,
    /// Serialises writes: `EdgeShard::flush` panics if it races an update.
    writes: std::sync::Mutex<()>,
}

/// An engine shard that is not flushed on drop once its directory is gone.
///
/// `EdgeShard` flushes when dropped and panics when that fails. A directory
/// removed under a running instance (a test's temporary directory, an operator's
/// `rm -rf`) would then turn a shutdown into a crash, or a second panic into an
/// abort; the flush is skipped instead, with an error logged.
#[derive(Debug)]
pub struct Shard {
    engine: Option<edge::EdgeShard>,
    dir: PathBuf,
}

impl std::ops::Deref for Shard {
    type Target = edge::EdgeShard;

    #[allow(
        clippy::expect_used,
        reason = "`engine` is Some from construction until `drop`, the only place that takes it"
    )]
    fn deref(&self) -> &edge::EdgeShard {
        self.engine.as_ref().expect("shard present until dropped")
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        let Some(engine) = self.engine.take() else {
            return;
        };
        if self.dir.exists() {
            drop(engine);
        } else {
            tracing::error!(
                dir = %self.dir.display(),
                "the collection's directory is gone; its shard is closed without a flush"
            );
            std::mem::forget(engine);
        }
    }
}

impl Collection {
    fn new(engine: edge::EdgeShard, dir: PathBuf, spec: CollectionSpec) -> Self {
        Self {
            shard: Shard {
                engine: Some(engine),
                dir,
            },
            spec,
            writes: std::sync::Mutex::new(()),
        }
    }

    /// Applies a write and flushes it to disk before returning. qdrant-edge 0.7
    /// does not replay its WAL on load, so only flushed writes survive a crash
    /// (kill -9): an acknowledged write must be flushed first.
    pub fn write(&self, operation: edge::UpdateOperation) -> edge::OperationResult<()> {
        // The guarded data is (); a poisoned lock leaves nothing inconsistent.
        let _guard = self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.shard.update(operation)?;
        self.shard.flush();
        Ok(())
    }
}

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The collection exists already.
    #[error("collection {0:?} already exists")]
    Exists(String),
    /// The request is not valid for the engine.
    #[error("{0}")]
    Invalid(String),
    /// Disk or engine failure.
    #[error("{0}")]
    Storage(String),
}

/// Every collection of the embedded store.
#[derive(Debug)]
pub struct Engine {
    root: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
}

fn storage(err: impl std::fmt::Display) -> EngineError {
    EngineError::Storage(err.to_string())
}

fn distance(name: &str) -> Result<edge::Distance, EngineError> {
    match name {
        "cosine" => Ok(edge::Distance::Cosine),
        "dot" => Ok(edge::Distance::Dot),
        "euclid" => Ok(edge::Distance::Euclid),
        "manhattan" => Ok(edge::Distance::Manhattan),
        other => Err(EngineError::Invalid(format!("unknown distance {other:?}"))),
    }
}

impl Engine {
    /// Opens (or creates) the store under `root`, loading every collection.
    pub fn open(root: &Path) -> Result<Self, EngineError> {
        let dir = root.join("collections");
        std::fs::create_dir_all(&dir).map_err(storage)?;
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(storage)? {
            let path = entry.map_err(storage)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let spec_path = path.join("spec.json");
            if !spec_path.exists() {
                tracing::warn!(
                    collection = name,
                    "removing a collection whose creation never finished"
                );
                std::fs::remove_dir_all(&path).map_err(storage)?;
                continue;
            }
            let spec: CollectionSpec =
                serde_json::from_slice(&std::fs::read(&spec_path).map_err(storage)?)
                    .map_err(storage)?;
            let dir = path.join("shard");
            let shard = edge::EdgeShard::load(&dir, None).map_err(storage)?;
            collections.insert(name, Arc::new(Collection::new(shard, dir, spec)));
        }
        Ok(Self {
            root: dir,
            collections: RwLock::new(collections),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Collection>>> {
        // Critical sections are single map operations; poisoning cannot leave the
        // map inconsistent.
        self.collections
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Collection>>> {
        self.collections
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The collection called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Collection>> {
        self.read().get(name).cloned()
    }

    /// Every collection's name.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Creates a collection.
    pub fn create(&self, name: &str, spec: CollectionSpec) -> Result<(), EngineError> {
        let mut collections = self.write();
        if collections.contains_key(name) {
            return Err(EngineError::Exists(name.to_owned()));
        }
        let mut builder = edge::EdgeConfigBuilder::new();
        for (vector, dense) in &spec.dense {
            builder = builder.vector(
                vector.as_str(),
                edge::EdgeVectorParamsBuilder::new(dense.size, distance(&dense.distance)?).build(),
            );
        }
        for (vector, idf) in &spec.sparse {
            let mut params = edge::EdgeSparseVectorParamsBuilder::new();
            if *idf {
                params = params.modifier(edge::Modifier::Idf);
            }
            builder = builder.sparse_vector(vector.as_str(), params.build());
        }
        let path = self.root.join(name);
        let dir = path.join("shard");
        std::fs::create_dir_all(&dir).map_err(storage)?;
        let shard = edge::EdgeShard::new(&dir, builder.build()).map_err(storage)?;
        let spec_bytes = serde_json::to_vec_pretty(&spec).map_err(storage)?;
        let temporary = path.join("spec.json.tmp");
        std::fs::write(&temporary, spec_bytes).map_err(storage)?;
        std::fs::rename(&temporary, path.join("spec.json")).map_err(storage)?;
        collections.insert(name.to_owned(), Arc::new(Collection::new(shard, dir, spec)));
        Ok(())
    }

    /// Deletes a collection; false when there was none. Calls already running on
    /// it finish first (for up to a minute): the shard flushes its files when it
    /// is dropped, so they must still exist then.
    pub fn delete(&self, name: &str) -> Result<bool, EngineError> {
        let Some(mut collection) = self.write().remove(name) else {
            return Ok(false);
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match Arc::try_unwrap(collection) {
                Ok(sole) => {
                    drop(sole);
                    break;
                }
                Err(shared) if std::time::Instant::now() < deadline => {
                    collection = shared;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(_) => {
                    return Err(EngineError::Storage(format!(
                        "collection {name:?} is still in use after a minute; its files are kept"
                    )));
                }
            }
        }
        std::fs::remove_dir_all(self.root.join(name)).map_err(storage)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_whose_directory_vanished_closes_without_panicking() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::open(root.path()).unwrap();
        let spec = CollectionSpec {
            dense: BTreeMap::new(),
            sparse: [("bm25".to_owned(), true)].into(),
        };
        engine.create("docs", spec).unwrap();
        let point = edge::PointStruct::new(
            edge::PointId::NumId(1),
            edge::Vectors::from(std::collections::HashMap::<String, edge::Vector>::new()),
            serde_json::json!({"doc_id": "a.md"}),
        );
        engine
            .get("docs")
            .unwrap()
            .write(edge::UpdateOperation::PointOperation(
                edge::PointOperations::UpsertPoints(edge::PointInsertOperations::PointsList(vec![
                    point.into(),
                ])),
            ))
            .unwrap();
        std::fs::remove_dir_all(root.path()).unwrap();
        // EdgeShard's own drop would panic here: its flush writes into the
        // directory that is gone.
        drop(engine);
    }
}
